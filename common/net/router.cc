#include <strings.h>

#include <algorithm>
#include <cctype>

#include "common/net/http_server.h"

namespace gantry::common {
namespace {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  if (!path.empty() && path[0] == '/') start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  // "/" and "" both mean no segments; a trailing slash keeps its empty last segment.
  if (parts.size() == 1 && parts[0].empty()) parts.clear();
  return parts;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out.push_back(static_cast<char>(high * 16 + low));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return value;
  }
  return std::nullopt;
}

std::optional<std::string> Request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return value;
    }
  }
  return std::nullopt;
}

std::string Request::param(const std::string& name) const {
  auto it = path_params.find(name);
  return it == path_params.end() ? std::string() : it->second;
}

std::shared_ptr<ResponseStream> Request::stream(int status, HttpHeaders headers) {
  if (taken_stream) return taken_stream;
  if (!stream_factory) return nullptr;
  taken_stream = stream_factory(status, std::move(headers));
  return taken_stream;
}

bool Request::is_websocket_upgrade() const {
  auto has_token = [](std::optional<std::string> value, std::string_view token) {
    if (!value) return false;
    std::string v = *value;
    for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return v.find(token) != std::string::npos;
  };
  return method == "GET" && has_token(header("Upgrade"), "websocket") &&
         has_token(header("Connection"), "upgrade") && header("Sec-WebSocket-Key").has_value();
}

void Request::upgrade_websocket(std::string subprotocol, std::unique_ptr<WsHandler> handler) {
  if (deferred || taken_stream || !is_websocket_upgrade()) return;
  upgrade_subprotocol = std::move(subprotocol);
  upgrade_handler = std::move(handler);
}

std::shared_ptr<DeferredResponse> Request::defer() {
  if (!defer_factory || deferred || taken_stream) return nullptr;
  deferred = true;
  return defer_factory();
}

Response Response::text(int status, std::string body) {
  return Response{status, {{"Content-Type", "text/plain; charset=utf-8"}}, std::move(body)};
}

Response Response::json(int status, std::string body) {
  return Response{status, {{"Content-Type", "application/json"}}, std::move(body)};
}

void Router::add(std::string method, std::string_view pattern, HttpHandler handler) {
  Route route;
  route.method = std::move(method);
  route.handler = std::move(handler);
  for (std::string_view part : split_path(pattern)) {
    Segment segment;
    if (part.size() > 5 && part.front() == '{' && part.substr(part.size() - 4) == "...}") {
      segment.kind = Segment::Kind::kRest;
      segment.text = std::string(part.substr(1, part.size() - 5));
    } else if (part.size() > 2 && part.front() == '{' && part.back() == '}') {
      segment.kind = Segment::Kind::kParam;
      segment.text = std::string(part.substr(1, part.size() - 2));
    } else {
      segment.kind = Segment::Kind::kLiteral;
      segment.text = std::string(part);
    }
    route.segments.push_back(std::move(segment));
  }
  routes_.push_back(std::move(route));
}

void Router::set_fallback(HttpHandler handler) {
  fallback_ = std::move(handler);
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  const auto parts = split_path(path);
  Match best;
  std::vector<int> best_score;
  for (const auto& route : routes_) {
    std::map<std::string, std::string> params;
    std::vector<int> score;  // per segment: 2 literal, 1 parameter, 0 rest; higher wins
    bool matched = true;
    size_t i = 0;
    for (; i < route.segments.size(); ++i) {
      const auto& segment = route.segments[i];
      if (segment.kind == Segment::Kind::kRest) {
        std::string rest;
        for (size_t j = i; j < parts.size(); ++j) {
          if (j > i) rest += '/';
          rest += parts[j];
        }
        params[segment.text] = percent_decode(rest);
        score.push_back(0);
        i = parts.size();
        break;
      }
      if (i >= parts.size()) {
        matched = false;
        break;
      }
      const std::string decoded = percent_decode(parts[i]);
      if (segment.kind == Segment::Kind::kLiteral) {
        if (decoded != segment.text) {
          matched = false;
          break;
        }
        score.push_back(2);
      } else {
        if (decoded.empty()) {
          matched = false;
          break;
        }
        params[segment.text] = decoded;
        score.push_back(1);
      }
    }
    if (!matched || (i != parts.size() && (route.segments.empty() ||
                                           route.segments.back().kind != Segment::Kind::kRest))) {
      continue;
    }
    if (route.method != "*" && route.method != method) {
      best.allowed_methods.push_back(route.method);
      continue;
    }
    if (best.handler == nullptr || score > best_score) {
      best.handler = &route.handler;
      best.params = std::move(params);
      best_score = std::move(score);
    }
  }
  if (best.handler != nullptr) best.allowed_methods.clear();
  return best;
}

Response Router::dispatch(Request& request) const {
  // Match on the raw path (segments are decoded one by one) so that an escaped '/' inside a
  // name does not split it.
  std::string_view raw =
      request.target.empty() ? std::string_view(request.path) : std::string_view(request.target);
  Match found = match(request.method, raw.substr(0, raw.find('?')));
  if (found.handler != nullptr) {
    request.path_params = std::move(found.params);
    return (*found.handler)(request);
  }
  if (!found.allowed_methods.empty()) {
    std::sort(found.allowed_methods.begin(), found.allowed_methods.end());
    found.allowed_methods.erase(
        std::unique(found.allowed_methods.begin(), found.allowed_methods.end()),
        found.allowed_methods.end());
    std::string allow;
    for (const auto& method : found.allowed_methods) {
      if (!allow.empty()) allow += ", ";
      allow += method;
    }
    Response response = Response::text(405, "method " + request.method + " not allowed\n");
    response.headers.emplace_back("Allow", allow);
    return response;
  }
  if (fallback_) return fallback_(request);
  return Response::text(404, "not found: " + request.path + "\n");
}

}  // namespace gantry::common
