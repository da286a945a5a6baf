#include "cloudcore/api/ui_server.h"

#include <fmt/format.h>

#include <string>

namespace gantry::cloud::api {

using common::Request;
using common::Response;

namespace {

constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'";

void add_security_headers(Response& r) {
  r.headers.emplace_back("Content-Security-Policy", kCsp);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
  r.headers.emplace_back("Cross-Origin-Resource-Policy", "same-origin");
}

// FNV-1a over the bytes: an ETag that changes with the asset.
std::string etag_of(const UiAsset& a) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < a.size; ++i) {
    h ^= a.data[i];
    h *= 1099511628211ull;
  }
  return fmt::format("\"{:016x}\"", h);
}

Response page(int code, const std::string& title, const std::string& text) {
  Response r;
  r.status = code;
  r.body = fmt::format(
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>"
      "<body><h1>{}</h1><p>{}</p><p><a href=\"/ui/\">Gantry dashboard</a></p></body></html>\n",
      title, title, text);
  r.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
  r.headers.emplace_back("Cache-Control", "no-store");
  add_security_headers(r);
  return r;
}

}  // namespace

std::string_view ui_content_type(std::string_view path) {
  auto ends = [&](std::string_view s) { return path.ends_with(s); };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js") || ends(".mjs")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".json") || ends(".webmanifest")) return "application/json";
  if (ends(".txt")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

std::optional<Response> serve_ui(const Request& req) {
  const std::string& path = req.path;
  if (path != "/ui" && !path.starts_with("/ui/")) return std::nullopt;
  if (req.method != "GET" && req.method != "HEAD") {
    Response r = page(405, "Method not allowed", "The dashboard's files are read-only.");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (path == "/ui") {
    Response r;
    r.status = 301;
    r.headers.emplace_back("Location", "/ui/");
    add_security_headers(r);
    return r;
  }
  std::string name = path.substr(4);
  if (name.empty()) name = "index.html";
  const UiAsset* found = nullptr;
  for (const auto& a : ui_assets())
    if (name == a.path) found = &a;
  if (!found)
    return page(404, "Not found",
                fmt::format("The dashboard has no file \"{}\".", name.size() > 200 ? "..." : name));
  std::string etag = etag_of(*found);
  Response r;
  r.headers.emplace_back("Content-Type", std::string(ui_content_type(name)));
  // Revalidated on every load (cheap: 304), so that an upgraded cloudcore serves its own UI.
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("ETag", etag);
  add_security_headers(r);
  if (req.header("If-None-Match").value_or("") == etag) {
    r.status = 304;
    return r;
  }
  r.status = 200;
  if (req.method == "GET") r.body.assign(reinterpret_cast<const char*>(found->data), found->size);
  return r;
}

}  // namespace gantry::cloud::api
