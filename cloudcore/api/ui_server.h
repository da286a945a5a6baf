// The dashboard's static assets, embedded in the binary at build time (cloudcore/api/ui), served
// under /ui/ on the API port without a token (the page signs in with one; the data endpoints
// need it). Strict headers: a Content-Security-Policy allowing only this origin, no framing, no
// sniffing, no referrer.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "common/net/http_server.h"

namespace gantry::cloud::api {

struct UiAsset {
  const char* path;  // "index.html", "js/app.js"
  const unsigned char* data;
  size_t size;
};

// Generated from cloudcore/api/ui/assets (ui_assets.cc in the build tree).
const std::vector<UiAsset>& ui_assets();

// The response for /ui and /ui/...; nullopt for every other path.
std::optional<common::Response> serve_ui(const common::Request& req);

// "text/javascript; charset=utf-8" for "app.js", ...
std::string_view ui_content_type(std::string_view path);

}  // namespace gantry::cloud::api
