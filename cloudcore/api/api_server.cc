#include "cloudcore/api/api_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <variant>

#include "cloudcore/api/aggregates_api.h"
#include "cloudcore/api/authorizer.h"
#include "cloudcore/api/continue_token.h"
#include "cloudcore/api/discovery.h"
#include "cloudcore/api/kind.h"
#include "cloudcore/api/kinds/workload_common.h"
#include "cloudcore/api/openapi.h"
#include "cloudcore/api/patch.h"
#include "cloudcore/api/protobuf_body.h"
#include "cloudcore/api/render.h"
#include "cloudcore/api/schema.h"
#include "cloudcore/api/selectors.h"
#include "cloudcore/api/ui_server.h"
#include "cloudcore/api/validation.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "common/base/json.h"
#include "common/base/parse.h"
#include "common/base/uid.h"
#include "common/net/http_server.h"

namespace gantry::cloud::api {
namespace {

using common::Code;
using common::Request;
using common::Response;
using nlohmann::json;

constexpr const char* kGitVersion = "v1.28.0-gantry";

// ---------------------------------------------------------------------------------------------
// Errors as Kubernetes Status objects.

struct Failure {
  Failure() = default;
  Failure(int c, std::string r, std::string m, json d = nullptr)
      : code(c), reason(std::move(r)), message(std::move(m)), details(std::move(d)) {}
  int code = 500;
  std::string reason;
  std::string message;
  json details;  // Status.details, when set
};

// A resourceVersion: a store revision ("" and "0" are 0).
std::optional<Revision> parse_revision(const std::string& v) {
  if (v.empty()) return Revision{0};
  auto n = common::parse_uint64(v);
  if (!n.ok()) return std::nullopt;
  return Revision{*n};
}

template <typename T>
using Outcome = std::variant<T, Failure>;

template <typename T>
bool failed(const Outcome<T>& o) {
  return std::holds_alternative<Failure>(o);
}

Failure bad_request(std::string message) {
  return {400, "BadRequest", std::move(message)};
}
// A query parameter that does not parse (common/base/parse.h names it in the message).
Failure bad_param(const common::Status& s) {
  return bad_request(s.message());
}
Failure invalid(std::string message) {
  return {422, "Invalid", std::move(message)};
}
// A 422 Invalid with details.causes from validation's field errors.
Failure invalid_failure(const std::string& kind, const std::string& name,
                        const FieldErrors& errors) {
  json status = invalid_status(kind, name, errors);
  return {422, "Invalid", status["message"].get<std::string>(), status["details"]};
}
Failure not_found(const std::string& resource, const std::string& name) {
  return {404, "NotFound", fmt::format("{} \"{}\" not found", resource, name)};
}
Failure internal(const common::Status& s) {
  // The store's backend (etcd) not answering: the client may retry.
  if (s.code() == Code::kUnavailable) return {503, "ServiceUnavailable", s.message()};
  return {500, "InternalError", s.to_string()};
}

Failure from_store(const common::Status& s) {
  switch (s.code()) {
    case Code::kOutOfRange:
      return {410, "Expired", s.message()};
    case Code::kFailedPrecondition:
      return {409, "Conflict", s.message()};
    case Code::kNotFound:
      return {404, "NotFound", s.message()};
    default:
      return internal(s);
  }
}

json status_json(const Failure& f) {
  json out = {{"kind", "Status"},    {"apiVersion", "v1"},   {"metadata", json::object()},
              {"status", "Failure"}, {"message", f.message}, {"reason", f.reason},
              {"code", f.code}};
  if (!f.details.is_null()) out["details"] = f.details;
  return out;
}

// What kube-apiserver answers for a resourceVersion it has not reached (504, with the
// ResourceVersionTooLarge cause client-go looks for).
Failure too_large_resource_version(Revision asked, Revision current) {
  Failure f{504, "Timeout",
            fmt::format("Timeout: Too large resource version: {}, current: {}", asked, current)};
  f.details = {
      {"causes",
       {{{"reason", "ResourceVersionTooLarge"}, {"message", "Too large resource version"}}}},
      {"retryAfterSeconds", 1}};
  return f;
}

// The options of a write: dryRun=All is the only value Kubernetes defines. `options_kind`
// ("CreateOptions", ...) names them in the error, as kube-apiserver does.
struct WriteOptions {
  bool dry_run = false;
  FieldValidation field_validation = FieldValidation::kWarn;  // ?fieldValidation= (schema.h)
};
std::optional<Failure> dry_run_values(const std::vector<std::string>& values,
                                      const char* options_kind, WriteOptions& out) {
  for (const auto& v : values) {
    if (v != "All")
      return Failure{422, "Invalid",
                     fmt::format("{}.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: "
                                 "\"{}\": supported values: \"All\"",
                                 options_kind, v)};
    out.dry_run = true;
  }
  return std::nullopt;
}
Outcome<WriteOptions> write_options(const Request& req, const char* options_kind) {
  WriteOptions o;
  std::vector<std::string> values;
  if (auto v = req.query_param("dryRun")) values.push_back(*v);
  if (auto f = dry_run_values(values, options_kind, o)) return *f;
  auto mode = parse_field_validation(req.query_param("fieldValidation"));
  if (!mode.ok()) return bad_request(mode.status().message());
  o.field_validation = *mode;
  return o;
}

// DeleteOptions from the query and the body (or an Eviction's deleteOptions).
struct DeleteOptions {
  std::optional<int64_t> grace;
  WriteOptions write;
  std::string propagation;  // "", Background, Foreground, Orphan (kinds that cascade)
};
Outcome<DeleteOptions> delete_options(const Request& req, const json* body) {
  DeleteOptions o;
  std::vector<std::string> dry;
  if (body && !body->is_null()) {
    if (!body->is_object()) return bad_request("DeleteOptions must be a JSON object");
    if (body->contains("gracePeriodSeconds") && !(*body)["gracePeriodSeconds"].is_null()) {
      if (!(*body)["gracePeriodSeconds"].is_number_integer())
        return bad_request("DeleteOptions.gracePeriodSeconds must be an integer");
      o.grace = (*body)["gracePeriodSeconds"].get<int64_t>();
    }
    if (body->contains("propagationPolicy") && (*body)["propagationPolicy"].is_string())
      o.propagation = (*body)["propagationPolicy"].get<std::string>();
    if (body->contains("orphanDependents") && (*body)["orphanDependents"].is_boolean())
      o.propagation = (*body)["orphanDependents"].get<bool>() ? "Orphan" : "Background";
    if (body->contains("dryRun") && (*body)["dryRun"].is_array())
      for (const auto& v : (*body)["dryRun"])
        dry.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  }
  auto grace =
      common::parse_int64_param("gracePeriodSeconds", req.query_param("gracePeriodSeconds"));
  if (!grace.ok()) return bad_param(grace.status());
  if (*grace) o.grace = **grace;
  auto orphan = common::parse_bool_param("orphanDependents", req.query_param("orphanDependents"));
  if (!orphan.ok()) return bad_param(orphan.status());
  if (*orphan) o.propagation = **orphan ? "Orphan" : "Background";
  if (auto pp = req.query_param("propagationPolicy")) o.propagation = *pp;
  if (!o.propagation.empty() && o.propagation != "Background" && o.propagation != "Foreground" &&
      o.propagation != "Orphan")
    return Failure{422, "Invalid",
                   fmt::format("propagationPolicy: Unsupported value: \"{}\": supported values: "
                               "\"Background\", \"Foreground\", \"Orphan\"",
                               o.propagation)};
  // As kube-apiserver: a negative grace period means one second.
  if (o.grace && *o.grace < 0) o.grace = 1;
  if (auto v = req.query_param("dryRun")) dry.push_back(*v);
  if (auto f = dry_run_values(dry, "DeleteOptions", o.write)) return *f;
  return o;
}

Response failure_response(const Failure& f) {
  auto r = Response::json(f.code, status_json(f).dump());
  return r;
}

Response json_response(int code, const json& body, const std::vector<std::string>& warnings = {}) {
  auto r = Response::json(code, body.dump());
  for (const auto& w : warnings) {
    // RFC 7234 warn-text: a quoted-string, '"' and '\\' escaped (client-go unescapes them).
    std::string text;
    for (char c : w) {
      if (c == '"' || c == '\\') text += '\\';
      text += (c == '\r' || c == '\n') ? ' ' : c;
    }
    r.headers.emplace_back("Warning", fmt::format("299 - \"{}\"", text));
  }
  return r;
}

// Unknown fields of a written object (schema.h): dropped; under fieldValidation=Strict refused as
// kube-apiserver does: a create or update body 400 BadRequest ("Pod in version "v1" cannot be
// handled as a Pod: strict decoding error: ..."), a patch 422 Invalid on the field "patch";
// under Warn (the default) one Warning header per field. `warnings` gets the Warn texts.
std::optional<Failure> drop_unknown_fields(const Kind& t, json& obj, FieldValidation mode,
                                           bool is_patch, std::vector<std::string>& warnings) {
  const std::string& kind = t.kind;
  const std::string& version = t.version;
  auto unknown = prune_unknown_fields(t.group, kind, obj);
  auto verdict = judge_unknown_fields(mode, unknown);
  for (auto& w : verdict.warnings) warnings.push_back(std::move(w));
  if (!verdict.error) return std::nullopt;
  if (is_patch) {
    std::string name = obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object()
                           ? obj["metadata"].value("name", "")
                           : "";
    Failure f{422, "Invalid",
              fmt::format("{} \"{}\" is invalid: patch: Invalid value: \"the patched object\": {}",
                          kind, name, *verdict.error)};
    f.details = {
        {"name", name},
        {"kind", kind},
        {"causes",
         {{{"reason", "FieldValueInvalid"}, {"message", *verdict.error}, {"field", "patch"}}}}};
    return f;
  }
  return bad_request(fmt::format("{} in version \"{}\" cannot be handled as a {}: {}", kind,
                                 version, kind, *verdict.error));
}

// ---------------------------------------------------------------------------------------------
// JSON helpers.

std::string str_at(const json& obj, const std::string& dotted) {
  const json* cur = &obj;
  size_t start = 0;
  while (start <= dotted.size()) {
    size_t dot = dotted.find('.', start);
    std::string part =
        dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!cur->is_object() || !cur->contains(part)) return "";
    cur = &(*cur)[part];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  if (cur->is_number()) return cur->dump();
  return "";
}

// The metadata.resourceVersion a written body is based on (0 when it has none).
Outcome<Revision> body_revision(const json& doc) {
  std::string rv = doc.is_object() ? str_at(doc, "metadata.resourceVersion") : "";
  auto parsed = parse_revision(rv);
  if (!parsed)
    return bad_request(fmt::format(
        "metadata.resourceVersion: Invalid value: \"{}\": must be a resource version", rv));
  return *parsed;
}

std::map<std::string, std::string> labels_of(const json& obj) {
  std::map<std::string, std::string> out;
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return out;
  const json& meta = obj["metadata"];
  if (!meta.contains("labels") || !meta["labels"].is_object()) return out;
  for (auto it = meta["labels"].begin(); it != meta["labels"].end(); ++it)
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  return out;
}

// RFC 1123 label (namespaces) or subdomain (everything else), as Kubernetes validates names.
bool valid_name(const std::string& name, bool label_only) {
  if (name.empty() || name.size() > (label_only ? 63u : 253u)) return false;
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (!label_only && c == '.');
    if (!ok) return false;
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return alnum(name.front()) && alnum(name.back());
}

bool wants_table(const Request& req) {
  auto accept = req.header("Accept");
  return accept && accept->find("as=Table") != std::string::npos;
}

std::optional<std::string> query(const Request& req, std::string_view name) {
  return req.query_param(name);
}

// ---------------------------------------------------------------------------------------------
// A loaded object: the stored record, its JSON, and (pods, nodes) its status.

struct Loaded {
  KeyValue kv;
  v1::StoredObject stored;
  json object;  // as stored (no status, no resourceVersion)
  std::optional<KeyValue> status_kv;
  v1::StoredStatus status;
  Revision resource_version = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

struct ApiServer::Impl : std::enable_shared_from_this<ApiServer::Impl> {
  common::EventLoop& loop;
  const KindRegistry& kinds;
  Store& store;
  Registry& registry;
  common::Clock& clock;
  TokenAuthenticator tokens;
  ApiServerOptions options;
  ApiServerStats stats;
  Authorizer authorizer;  // roles, province namespaces, admission (cloudcore/api/authorizer.h)
  std::unique_ptr<common::HttpServer> http;
  std::unique_ptr<Aggregates> aggregates;  // fleet aggregates for the dashboard (aggregates_api.h)
  // /openapi/v2 in both encodings, derived from the kinds once.
  const std::string openapi_protobuf = openapi_v2_protobuf(kinds, kGitVersion);
  const std::string openapi_json = openapi_v2_json(kinds, kGitVersion).dump();

  struct Watch;
  struct LogSession;
  std::mutex watches_mu;
  std::set<std::shared_ptr<Watch>> watches;
  std::set<std::shared_ptr<LogSession>> log_sessions;  // guarded by watches_mu too
  bool stopped = false;

  Impl(common::EventLoop& l, Store& s, Registry& r, common::Clock& c, TokenAuthenticator t,
       ApiServerOptions o)
      : loop(l),
        kinds(o.kinds ? *o.kinds : builtin_kinds()),
        store(s),
        registry(r),
        clock(c),
        tokens(std::move(t)),
        options(std::move(o)),
        authorizer(s, r) {}

  int64_t now_seconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock.system_now().time_since_epoch())
        .count();
  }

  // ----- reading --------------------------------------------------------------------------

  Outcome<Loaded> decode(const Kind& t, KeyValue kv, Revision at) {
    Loaded l;
    if (!l.stored.ParseFromString(kv.value))
      return internal(common::make_error(Code::kDataLoss, "{}: unreadable record", kv.key));
    l.object = json::parse(l.stored.json(), nullptr, false);
    if (l.object.is_discarded() || !l.object.is_object())
      return internal(common::make_error(Code::kDataLoss, "{}: stored JSON unreadable", kv.key));
    l.resource_version = kv.mod_revision;
    if (!t.status_prefix.empty()) {
      std::string skey = t.status_prefix + kv.key.substr(t.prefix.size());
      auto s = store.get(skey, at);
      if (!s.ok() && s.status().code() == Code::kOutOfRange) s = store.get(skey, 0);
      if (!s.ok()) return from_store(s.status());
      if (*s && l.status.ParseFromString((*s)->value)) {
        // A status left from an earlier object of the same name does not belong to this one.
        std::string uid = str_at(l.object, "metadata.uid");
        if (l.status.uid().empty() || uid.empty() || l.status.uid() == uid) {
          l.status_kv = **s;
          l.resource_version = std::max(l.resource_version, (*s)->mod_revision);
        } else {
          l.status.Clear();
        }
      }
    }
    l.kv = std::move(kv);
    return l;
  }

  Outcome<std::optional<Loaded>> load(const Kind& t, const std::string& ns,
                                      const std::string& name) {
    auto kv = store.get(t.key(ns, name));
    if (!kv.ok()) return from_store(kv.status());
    if (!*kv) return std::optional<Loaded>();
    auto l = decode(t, std::move(**kv), 0);
    if (failed(l)) return std::get<Failure>(l);
    return std::optional<Loaded>(std::move(std::get<Loaded>(l)));
  }

  json render(const Kind& t, const Loaded& l) {
    json obj = l.object;
    obj["kind"] = t.kind;
    obj["apiVersion"] = t.api_version();
    obj["metadata"]["resourceVersion"] = std::to_string(l.resource_version);
    if (t.render_status) t.render_status(obj, l.status_kv ? &l.status : nullptr);
    if (t.to_external) t.to_external(obj);
    return obj;
  }

  // ----- authorization (the rules live in authorizer.cc) -----------------------------

  std::optional<Failure> denied(std::optional<Denial> d) {
    if (!d) return std::nullopt;
    ++stats.forbidden;
    return Failure{d->code, d->reason, d->message};
  }

  // Request-level check, before any object is read.
  std::optional<Failure> check_kind(const Identity& who, const Permissions& p, const Kind& t,
                                    const std::string& ns, Verbs verb) {
    auto names = verb_names(verb);
    return denied(
        authorizer.check_request(who, p, t.plural, ns, names.empty() ? "get" : names.front()));
  }

  std::optional<Failure> check_object(const Identity& who, const Permissions& p, const Kind& t,
                                      const json& obj, bool write) {
    return denied(authorizer.check_object(who, p, t.plural, obj, write));
  }

  // Admission of a create (old null) or update; may change `obj` (admission.h).
  std::optional<Failure> admit(const Identity& who, const Permissions& p, const Kind& t, json& obj,
                               const json* old) {
    return denied(authorizer.admit(who, p, t.plural, obj, old));
  }

  bool visible(const Permissions& p, const Kind& t, const json& obj) {
    return authorizer.visible(p, t.plural, obj);
  }

  // ----- list ---------------------------------------------------------------------------

  struct Filter {
    LabelSelector labels;
    FieldSelector fields;
    Permissions permissions;
    bool matches(Impl& impl, const Kind& t, const json& obj) const {
      if (!labels.matches(labels_of(obj))) return false;
      if (!fields.matches([&](const std::string& f) { return str_at(obj, f); })) return false;
      return impl.visible(permissions, t, obj);
    }
  };

  Outcome<Filter> parse_filter(const Request& req, const Kind& t, const Permissions& p) {
    Filter f;
    f.permissions = p;
    if (auto ls = query(req, "labelSelector")) {
      auto parsed = LabelSelector::parse(*ls);
      if (!parsed.ok()) return bad_request(parsed.status().message());
      f.labels = std::move(parsed).value();
    }
    if (auto fs = query(req, "fieldSelector")) {
      auto parsed = FieldSelector::parse(*fs, t.field_selectors());
      if (!parsed.ok()) return bad_request(parsed.status().message());
      f.fields = std::move(parsed).value();
    }
    return f;
  }

  Response list(const Request& req, const Kind& t, const std::string& ns, const Filter& filter) {
    size_t limit = 0;
    auto asked_limit = common::parse_int64_param("limit", query(req, "limit"), 0);
    if (!asked_limit.ok()) return failure_response(bad_param(asked_limit.status()));
    if (*asked_limit)
      limit = std::min<size_t>(static_cast<size_t>(**asked_limit), options.max_list_limit);
    ListOptions lo;
    lo.prefix = t.list_prefix(ns);
    // resourceVersion / resourceVersionMatch as kube-apiserver reads them: unset or "0" is the
    // current state (cloudcore has one store, so the newest is also the cheapest); N without a
    // match or with NotOlderThan is the current state if it is at least N; Exact is the state at
    // N (410 once compacted). A revision this store has not reached is answered at once (504,
    // "Too large resource version"): kube-apiserver first waits up to 3 s for its cache to catch
    // up with etcd, but here there is nothing to wait for.
    std::string rv_text = query(req, "resourceVersion").value_or("");
    std::string match = query(req, "resourceVersionMatch").value_or("");
    bool continuing = !query(req, "continue").value_or("").empty();
    auto asked = parse_revision(rv_text);
    if (!asked)
      return failure_response(bad_request(
          fmt::format("resourceVersion: \"{}\" is not a valid resource version", rv_text)));
    auto list_invalid = [](const std::string& what) {
      return failure_response(invalid(
          fmt::format("ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: {}", what)));
    };
    if (!match.empty()) {
      if (match != "Exact" && match != "NotOlderThan")
        return list_invalid(fmt::format(
            "Unsupported value: \"{}\": supported values: \"Exact\", \"NotOlderThan\", \"\"",
            match));
      if (rv_text.empty())
        return list_invalid(
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided");
      if (continuing)
        return list_invalid(
            "Forbidden: resourceVersionMatch is forbidden when continue is provided");
      if (match == "Exact" && *asked == 0)
        return list_invalid(
            "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"");
    }
    if (continuing && *asked != 0)
      return failure_response(
          bad_request("specifying resource version is not allowed when using continue"));
    if (Revision current = store.current_revision(); *asked > current)
      return failure_response(too_large_resource_version(*asked, current));
    if (match == "Exact") {
      if (*asked < store.compacted_revision())
        return failure_response(
            {410, "Expired", "The resourceVersion for the provided list is too old."});
      lo.at = *asked;
    }
    if (auto c = query(req, "continue"); c && !c->empty()) {
      auto token = decode_continue(*c);
      if (!token.ok()) return failure_response(bad_request(token.status().message()));
      if (!token->last_key.starts_with(lo.prefix))
        return failure_response(bad_request("the continue token belongs to another list"));
      lo.at = token->revision;
      lo.start_after = token->last_key;
      if (lo.at < store.compacted_revision())
        return failure_response(
            {410, "Expired",
             "The provided continue parameter is too old to display a consistent list "
             "result. You can start a new list without the continue parameter."});
    }
    std::vector<json> items;
    std::string next;
    Revision revision = lo.at;
    lo.limit = limit ? std::max<size_t>(limit, 100) : 500;
    while (true) {
      auto page = store.list(lo);
      if (!page.ok()) {
        if (page.status().code() == Code::kOutOfRange)
          return failure_response(
              {410, "Expired",
               continuing ? "The provided continue parameter is too old to display a consistent "
                            "list result. You can start a new list without the continue parameter."
                          : "The resourceVersion for the provided list is too old."});
        return failure_response(internal(page.status()));
      }
      revision = page->revision;
      lo.at = revision;
      // Taken before the loop below moves the items out.
      std::string last_key = page->items.empty() ? std::string() : page->items.back().key;
      bool stopped_early = false;
      for (size_t i = 0; i < page->items.size(); ++i) {
        auto& kv = page->items[i];
        if (t.namespaced && kv.key.substr(t.prefix.size()).find('/') == std::string::npos) continue;
        std::string key = kv.key;
        auto l = decode(t, std::move(kv), revision);
        if (failed(l)) continue;  // unreadable records are skipped, not fatal to the list
        json obj = render(t, std::get<Loaded>(l));
        if (!filter.matches(*this, t, obj)) continue;
        items.push_back(std::move(obj));
        if (limit && items.size() == limit) {
          if (i + 1 < page->items.size() || page->more) next = encode_continue({revision, key});
          stopped_early = true;
          break;
        }
      }
      if (stopped_early || !page->more || last_key.empty()) break;
      lo.start_after = last_key;
    }
    std::string rv = std::to_string(revision);
    if (wants_table(req)) {
      json table = render_table(t.table_columns(), items, rv, clock.system_now());
      if (!next.empty()) table["metadata"]["continue"] = next;
      return json_response(200, table);
    }
    json out = {{"kind", t.list_kind()},
                {"apiVersion", t.api_version()},
                {"metadata", {{"resourceVersion", rv}}}};
    if (!next.empty()) out["metadata"]["continue"] = next;
    out["items"] = std::move(items);
    return json_response(200, out);
  }

  // ----- writes -------------------------------------------------------------------------

  // `t`: the kind a create or update writes, whose protobuf body (kubectl >= 1.33's typed
  // clients: `kubectl create configmap|secret|namespace`) is decoded (protobuf_body.h).
  Outcome<json> parse_body(const Request& req, const Kind* t = nullptr) {
    if (req.body.empty()) return bad_request("the request body is empty");
    std::string type = req.header("Content-Type").value_or("");
    if (t && type.substr(0, type.find(';')) == kProtobufMediaType &&
        protobuf_body_supported(t->group, t->kind)) {
      auto decoded = decode_protobuf_body(t->group, t->kind, req.body);
      if (!decoded.ok()) return bad_request(decoded.status().message());
      return std::move(decoded).value();
    }
    // Other protobuf and CBOR bodies are not decoded: a 415 says so (client-go >= 1.32 retries a
    // CBOR body with JSON; a protobuf one it does not).
    if (type.find("protobuf") != std::string::npos || type.find("cbor") != std::string::npos)
      return Failure{415, "UnsupportedMediaType",
                     fmt::format("the body's media type \"{}\" is not supported; send "
                                 "application/json",
                                 type.substr(0, type.find(';')))};
    // Bounded (depth, size) before any tree is built: a deeply nested body is a 400, not a crash.
    auto body = common::parse_json(req.body);
    if (!body.ok()) return bad_request("the request body is " + body.status().message());
    return std::move(*body);
  }

  // Checks kind/apiVersion/name/namespace against the URL and fills what the URL implies.
  std::optional<Failure> check_identity(const Kind& t, json& obj, const std::string& ns,
                                        const std::string& url_name) {
    if (!obj.is_object()) return bad_request("the request body must be a JSON object");
    if (obj.contains("kind") && obj["kind"] != t.kind)
      return bad_request(
          fmt::format("the kind \"{}\" does not match the URL, which is for {} (kind {})",
                      obj["kind"].is_string() ? obj["kind"].get<std::string>() : obj["kind"].dump(),
                      t.plural, t.kind));
    if (obj.contains("apiVersion") && obj["apiVersion"] != t.api_version())
      return bad_request(fmt::format("apiVersion {} does not match the URL ({})",
                                     obj["apiVersion"].dump(), t.api_version()));
    obj["kind"] = t.kind;
    obj["apiVersion"] = t.api_version();
    if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
    json& meta = obj["metadata"];
    if (meta.contains("name") && !meta["name"].is_string())
      return bad_request("metadata.name must be a string");
    if (!url_name.empty()) {
      if (meta.contains("name") && meta["name"] != url_name)
        return bad_request(
            fmt::format("the name of the object ({}) does not match the name on the URL ({})",
                        meta["name"].get<std::string>(), url_name));
      meta["name"] = url_name;
    }
    if (t.namespaced) {
      if (meta.contains("namespace") && meta["namespace"] != ns)
        return bad_request(fmt::format(
            "the namespace of the object ({}) does not match the namespace on the URL ({})",
            meta["namespace"].dump(), ns));
      meta["namespace"] = ns;
    } else {
      meta.erase("namespace");
    }
    return std::nullopt;
  }

  // Builds the stored record for `obj` (server fields already set), validating it.
  Outcome<v1::StoredObject> to_stored(const Kind& t, json obj) {
    if (t.status != StatusSource::kInObject) obj.erase("status");
    json& meta = obj["metadata"];
    meta.erase("resourceVersion");
    meta.erase("managedFields");
    meta.erase("selfLink");
    if (t.prepare) {
      auto prepared = t.prepare(obj);
      if (!prepared.ok())
        return invalid(fmt::format("{} \"{}\" is invalid: {}", t.kind, str_at(obj, "metadata.name"),
                                   prepared.message()));
    }
    if (meta.contains("labels") && !meta["labels"].is_null()) {
      if (!meta["labels"].is_object()) return invalid("metadata.labels: must be a map of strings");
      for (auto it = meta["labels"].begin(); it != meta["labels"].end(); ++it) {
        auto sel = LabelSelector::parse(
            it.key() + "=" + (it.value().is_string() ? it.value().get<std::string>() : "-"));
        if (!it.value().is_string() || !sel.ok())
          return invalid(fmt::format(
              "metadata.labels: \"{}\": invalid label (keys are [prefix/]name, values up "
              "to 63 characters of [A-Za-z0-9-_.])",
              it.key()));
      }
    }
    std::string text = obj.dump();
    if (t.edge_kind != v1::OBJECT_KIND_UNSPECIFIED) {
      auto stored = decode_object(t.edge_kind, text);
      if (!stored.ok())
        return invalid(fmt::format("{} \"{}\" is invalid: {}", t.kind, str_at(obj, "metadata.name"),
                                   stored.status().message()));
      return std::move(stored).value();
    }
    v1::StoredObject stored;
    stored.set_json(text);
    for (const auto& [k, v] : labels_of(obj)) (*stored.mutable_labels())[k] = v;
    return stored;
  }

  // Kind::validate and Kind::admit (kinds that check their fields or other stored objects).
  std::optional<Failure> kind_checks(const Kind& t, const json& obj, const json* old) {
    if (t.validate)
      if (auto errors = t.validate(obj, old); !errors.empty())
        return invalid_failure(t.kind, str_at(obj, "metadata.name"), errors);
    if (!t.admit) return std::nullopt;
    StoredLookup lookup;
    auto decode = [](const KeyValue& kv) -> std::optional<json> {
      v1::StoredObject so;
      if (!so.ParseFromString(kv.value)) return std::nullopt;
      json j = json::parse(so.json(), nullptr, false);
      if (j.is_discarded()) return std::nullopt;
      return j;
    };
    lookup.get = [&](const std::string& key) -> common::Result<std::optional<json>> {
      GANTRY_ASSIGN_OR_RETURN(auto kv, store.get(key));
      if (!kv) return std::optional<json>();
      return decode(*kv);
    };
    lookup.list = [&](const std::string& prefix) -> common::Result<std::vector<json>> {
      ListOptions o;
      o.prefix = prefix;
      GANTRY_ASSIGN_OR_RETURN(auto listed, store.list(o));
      std::vector<json> out;
      for (const auto& kv : listed.items)
        if (auto j = decode(kv)) out.push_back(std::move(*j));
      return out;
    };
    auto refused = t.admit(obj, old, lookup);
    if (!refused) return std::nullopt;
    return Failure{refused->code, refused->reason, refused->message, refused->details};
  }

  Response create(const Request& req, const Kind& t, const std::string& ns, const Identity& who,
                  const Permissions& p) {
    auto opts = write_options(req, "CreateOptions");
    if (failed(opts)) return failure_response(std::get<Failure>(opts));
    bool dry_run = std::get<WriteOptions>(opts).dry_run;
    auto body = parse_body(req, &t);
    if (failed(body)) return failure_response(std::get<Failure>(body));
    json obj = std::move(std::get<json>(body));
    if (auto f = check_identity(t, obj, ns, "")) return failure_response(*f);
    std::vector<std::string> warnings;
    if (auto f = drop_unknown_fields(t, obj, std::get<WriteOptions>(opts).field_validation, false,
                                     warnings))
      return failure_response(*f);
    json& meta = obj["metadata"];
    if (!meta.contains("name") || meta["name"].get<std::string>().empty()) {
      if (meta.contains("generateName") && meta["generateName"].is_string()) {
        meta["name"] = meta["generateName"].get<std::string>() + common::new_uid().substr(0, 5);
      } else {
        return failure_response(invalid(fmt::format(
            "{}: metadata.name: Required value: name or generateName is required", t.kind)));
      }
    }
    std::string name = meta["name"];
    if (!valid_name(name, t.name_is_label))
      return failure_response(
          invalid(fmt::format("{} \"{}\" is invalid: metadata.name: must consist of lower case "
                              "alphanumeric characters, '-'{} and "
                              "start and end with an alphanumeric character",
                              t.kind, name, t.name_is_label ? "" : " or '.'")));
    if (auto f = check_object(who, p, t, obj, true)) return failure_response(*f);
    // Kubernetes' defaults and validation (cloudcore/api/validation.h): 422 with the causes.
    default_object(t.kind, obj);
    // Admission (may mutate, e.g. a province nodeSelector) runs before validation, as in
    // Kubernetes.
    if (auto f = admit(who, p, t, obj, nullptr)) return failure_response(*f);
    if (auto errors = validate_object(t.kind, obj); !errors.empty())
      return failure_response(invalid_failure(t.kind, name, errors));
    if (auto f = kind_checks(t, obj, nullptr)) return failure_response(*f);
    if (t.namespaced) {
      auto nsk = store.get(std::string(keys::kNamespaces) + ns);
      if (!nsk.ok()) return failure_response(from_store(nsk.status()));
      if (!*nsk)
        return failure_response({404, "NotFound", fmt::format("namespaces \"{}\" not found", ns)});
    }
    meta["uid"] = common::new_uid();
    meta["creationTimestamp"] = rfc3339(now_seconds());
    meta.erase("deletionTimestamp");
    meta.erase("deletionGracePeriodSeconds");
    if (t.tracks_generation) meta["generation"] = 1;
    if (t.status == StatusSource::kInObject) obj.erase("status");  // written through /status only
    if (t.validate_create) {
      if (auto valid = t.validate_create(obj); !valid.ok())
        return failure_response(
            invalid(fmt::format("{} \"{}\" is invalid: {}", t.kind, name, valid.message())));
    }
    auto stored = to_stored(t, obj);
    if (failed(stored)) return failure_response(std::get<Failure>(stored));
    auto already_exists = [&] {
      return failure_response(
          {409, "AlreadyExists", fmt::format("{} \"{}\" already exists", t.plural, name)});
    };
    if (dry_run) {
      // Everything above ran (validation, admission); nothing is stored.
      auto existing = store.get(t.key(ns, name));
      if (!existing.ok()) return failure_response(from_store(existing.status()));
      if (*existing) return already_exists();
      Loaded l;
      l.object = json::parse(std::get<v1::StoredObject>(stored).json());
      json out = render(t, l);
      out["metadata"].erase("resourceVersion");
      if (t.warnings)
        for (auto& w : t.warnings(obj)) warnings.push_back(std::move(w));
      return json_response(201, out, warnings);
    }
    auto txn = store.txn(
        {Op::put(t.key(ns, name), std::get<v1::StoredObject>(stored).SerializeAsString(), 0)});
    if (!txn.ok()) {
      if (txn.status().code() == Code::kFailedPrecondition) return already_exists();
      return failure_response(internal(txn.status()));
    }
    Loaded l;
    l.object = json::parse(std::get<v1::StoredObject>(stored).json());
    l.resource_version = txn->revision;
    if (t.warnings)
      for (auto& w : t.warnings(obj)) warnings.push_back(std::move(w));
    return json_response(201, render(t, l), warnings);
  }

  struct Written {
    json object;  // as rendered after the write
    std::vector<std::string> warnings;
  };

  // `warnings`: those of the request so far (unknown fields dropped), answered before the kind's.
  Response write_update(const Kind& t, const Loaded& current, json obj, Revision expect_rv,
                        const Identity& who, const Permissions& p, int code, bool dry_run,
                        std::vector<std::string> warnings = {}) {
    auto w = put_update(t, current, std::move(obj), expect_rv, who, p, dry_run);
    if (failed(w)) return failure_response(std::get<Failure>(w));
    auto& written = std::get<Written>(w);
    for (auto& warning : written.warnings) warnings.push_back(std::move(warning));
    return json_response(code, written.object, warnings);
  }

  // Writes `obj` over `current` (kept: uid, creationTimestamp, deletion fields; the stored status
  // for kInObject kinds). `expect_rv`: the resourceVersion the client based its change on (0:
  // unconditional). A dry run validates and answers without storing.
  Outcome<Written> put_update(const Kind& t, const Loaded& current, json obj, Revision expect_rv,
                              const Identity& who, const Permissions& p, bool dry_run) {
    if (expect_rv && expect_rv != current.resource_version)
      return Failure(
          {409, "Conflict",
           fmt::format(
               "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please "
               "apply "
               "your changes to the latest version (resourceVersion {}, yours {}) and try again",
               t.plural, str_at(current.object, "metadata.name"), current.resource_version,
               expect_rv)});
    const json& old_meta = current.object["metadata"];
    json& meta = obj["metadata"];
    for (const char* keep :
         {"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"}) {
      if (old_meta.contains(keep)) {
        meta[keep] = old_meta[keep];
      } else {
        meta.erase(keep);
      }
    }
    if (t.status == StatusSource::kInObject) {
      if (current.object.contains("status")) {
        obj["status"] = current.object["status"];
      } else {
        obj.erase("status");
      }
    }
    if (t.validate_update) {
      auto valid = t.validate_update(current.object, obj);
      if (!valid.ok()) return invalid(valid.message());
    }
    if (auto f = check_object(who, p, t, current.object, true)) return *f;
    if (auto f = check_object(who, p, t, obj, true)) return *f;
    // Kubernetes' defaults and validation (cloudcore/api/validation.h): 422 with the causes.
    default_object(t.kind, obj);
    // Admission (may mutate, e.g. a province nodeSelector) runs before validation, as in
    // Kubernetes.
    if (auto f = admit(who, p, t, obj, &current.object)) return *f;
    if (auto errors = validate_object(t.kind, obj, &current.object); !errors.empty())
      return invalid_failure(t.kind, str_at(obj, "metadata.name"), errors);
    if (auto f = kind_checks(t, obj, &current.object)) return *f;
    if (t.tracks_generation) {
      json a = current.object.value("spec", json::object());
      json b = obj.value("spec", json::object());
      int64_t gen = old_meta.value("generation", 1);
      meta["generation"] = a == b ? gen : gen + 1;
    }
    auto stored = to_stored(t, obj);
    if (failed(stored)) return std::get<Failure>(stored);
    std::vector<std::string> warnings = t.warnings ? t.warnings(obj) : std::vector<std::string>{};
    if (dry_run) {
      Loaded l = current;
      l.object = json::parse(std::get<v1::StoredObject>(stored).json());
      return Written{render(t, l), std::move(warnings)};
    }
    auto txn =
        store.txn({Op::put(current.kv.key, std::get<v1::StoredObject>(stored).SerializeAsString(),
                           current.kv.mod_revision)});
    if (!txn.ok()) {
      if (txn.status().code() == Code::kFailedPrecondition)
        return Failure(
            {409, "Conflict",
             fmt::format("Operation cannot be fulfilled on {} \"{}\": the object has been "
                         "modified; please apply your changes to the latest version and try again",
                         t.plural, str_at(current.object, "metadata.name"))});
      return internal(txn.status());
    }
    Loaded l = current;
    l.object = json::parse(std::get<v1::StoredObject>(stored).json());
    l.resource_version =
        std::max(txn->revision, current.status_kv ? current.status_kv->mod_revision : 0);
    return Written{render(t, l), std::move(warnings)};
  }

  Response update(const Request& req, const Kind& t, const std::string& ns, const std::string& name,
                  const Identity& who, const Permissions& p) {
    auto opts = write_options(req, "UpdateOptions");
    if (failed(opts)) return failure_response(std::get<Failure>(opts));
    auto body = parse_body(req, &t);
    if (failed(body)) return failure_response(std::get<Failure>(body));
    json obj = std::move(std::get<json>(body));
    if (auto f = check_identity(t, obj, ns, name)) return failure_response(*f);
    std::vector<std::string> warnings;
    if (auto f = drop_unknown_fields(t, obj, std::get<WriteOptions>(opts).field_validation, false,
                                     warnings))
      return failure_response(*f);
    auto current = load(t, ns, name);
    if (failed(current)) return failure_response(std::get<Failure>(current));
    auto& cur = std::get<std::optional<Loaded>>(current);
    if (!cur) return failure_response(not_found(t.plural, name));
    auto expect = body_revision(obj);
    if (failed(expect)) return failure_response(std::get<Failure>(expect));
    return write_update(t, *cur, std::move(obj), std::get<Revision>(expect), who, p, 200,
                        std::get<WriteOptions>(opts).dry_run, std::move(warnings));
  }

  // The patched object, by the request's Content-Type.
  Outcome<json> apply_patch(const Request& req, const json& base, const json& patch_doc) {
    std::string type = req.header("Content-Type").value_or("");
    type = type.substr(0, type.find(';'));
    common::Result<json> patched = common::make_error(Code::kInvalidArgument, "");
    if (type == "application/merge-patch+json") {
      patched = apply_merge_patch(base, patch_doc);
    } else if (type == "application/strategic-merge-patch+json") {
      patched = apply_strategic_merge_patch(base, patch_doc);
    } else if (type == "application/json-patch+json") {
      patched = apply_json_patch(base, patch_doc);
    } else {
      return Failure{415, "UnsupportedMediaType",
                     fmt::format("the patch type \"{}\" is not supported (merge-patch+json, "
                                 "strategic-merge-patch+json, json-patch+json)",
                                 type)};
    }
    if (!patched.ok()) return bad_request(patched.status().message());
    return std::move(patched).value();
  }

  Response patch(const Request& req, const Kind& t, const std::string& ns, const std::string& name,
                 const Identity& who, const Permissions& p) {
    auto opts = write_options(req, "PatchOptions");
    if (failed(opts)) return failure_response(std::get<Failure>(opts));
    auto body = parse_body(req);
    if (failed(body)) return failure_response(std::get<Failure>(body));
    const json& patch_doc = std::get<json>(body);
    // Retried on a concurrent write, as Kubernetes does for patches without a resourceVersion.
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto current = load(t, ns, name);
      if (failed(current)) return failure_response(std::get<Failure>(current));
      auto& cur = std::get<std::optional<Loaded>>(current);
      if (!cur) return failure_response(not_found(t.plural, name));
      auto patched = apply_patch(req, render(t, *cur), patch_doc);
      if (failed(patched)) return failure_response(std::get<Failure>(patched));
      json obj = std::move(std::get<json>(patched));
      if (auto f = check_identity(t, obj, ns, name)) return failure_response(*f);
      // The stored object has no unknown fields: what is found came with the patch.
      std::vector<std::string> warnings;
      if (auto f = drop_unknown_fields(t, obj, std::get<WriteOptions>(opts).field_validation, true,
                                       warnings))
        return failure_response(*f);
      auto based_on = body_revision(patch_doc);
      if (failed(based_on)) return failure_response(std::get<Failure>(based_on));
      const Revision expect = std::get<Revision>(based_on);
      Response r = write_update(t, *cur, std::move(obj), expect, who, p, 200,
                                std::get<WriteOptions>(opts).dry_run, std::move(warnings));
      // Only a concurrent write is retried, not a kind's own 409 (Kind::admit).
      if (r.status == 409 && expect == 0 &&
          r.body.find("Operation cannot be fulfilled") != std::string::npos)
        continue;
      return r;
    }
    return failure_response(
        {409, "Conflict",
         fmt::format("{} \"{}\" kept changing while it was patched; try again", t.plural, name)});
  }

  // What a DELETE of an object that is gone answers: the object (pods) or a Status naming it.
  json deleted_answer(const Kind& t, const Loaded& gone) {
    if (t.delete_returns_object) return render(t, gone);
    return {{"kind", "Status"},
            {"apiVersion", "v1"},
            {"metadata", json::object()},
            {"status", "Success"},
            {"details",
             {{"name", str_at(gone.object, "metadata.name")},
              {"group", t.group},
              {"kind", t.plural},
              {"uid", str_at(gone.object, "metadata.uid")}}}};
  }

  // Deletes `cur` — or, for a kind with graceful deletion and an object bound to a node, marks it
  // (deletionTimestamp) for the edge to stop first. Returns the answer's body.
  Outcome<json> delete_object(const Kind& t, const Loaded& cur, const DeleteOptions& o,
                              const Identity& who, const Permissions& p) {
    const std::string name = str_at(cur.object, "metadata.name");
    if (auto f = check_object(who, p, t, cur.object, true)) return *f;
    if (t.delete_requires_empty) {
      for (const auto& other_kind : kinds.all()) {
        const Kind& other = *other_kind;
        if (!other.namespaced || other.prefix.empty()) continue;
        ListOptions lo;
        lo.prefix = other.prefix + name + "/";
        lo.limit = 1;
        lo.keys_only = true;
        auto l = store.list(lo);
        if (l.ok() && !l->items.empty())
          return Failure{409, "Conflict",
                         fmt::format("namespace \"{}\" still holds {}; delete them first (Gantry "
                                     "does not cascade namespace deletion yet)",
                                     name, other.plural)};
      }
    }
    if (t.cascades && (o.propagation == "Foreground" || o.propagation == "Orphan")) {
      // The garbage collector finishes the deletion (kind.h `cascades`).
      json obj = cur.object;
      if (!obj["metadata"].contains("deletionTimestamp"))
        obj["metadata"]["deletionTimestamp"] = rfc3339(now_seconds());
      obj["metadata"]["deletionGracePeriodSeconds"] = 0;
      obj["metadata"]["finalizers"] =
          json::array({o.propagation == "Orphan" ? "orphan" : "foregroundDeletion"});
      Loaded with_deletion = cur;
      with_deletion.object = obj;
      auto w = put_update(t, with_deletion, obj, 0, who, p, o.write.dry_run);
      if (failed(w)) return std::get<Failure>(w);
      return std::move(std::get<Written>(w).object);
    }
    bool bound = !str_at(cur.object, "spec.nodeName").empty();
    if (t.graceful_delete && bound && o.grace.value_or(1) != 0) {
      // Graceful: the edge stops the containers and reports the pod gone; then the hub removes it.
      if (cur.object["metadata"].contains("deletionTimestamp")) return render(t, cur);
      json obj = cur.object;
      int64_t period = o.grace.value_or(obj["spec"].value("terminationGracePeriodSeconds", 30));
      obj["metadata"]["deletionTimestamp"] = rfc3339(now_seconds() + period);
      obj["metadata"]["deletionGracePeriodSeconds"] = period;
      Loaded with_deletion = cur;
      with_deletion.object = obj;
      auto w = put_update(t, with_deletion, obj, 0, who, p, o.write.dry_run);
      if (failed(w)) return std::get<Failure>(w);
      return std::move(std::get<Written>(w).object);
    }
    if (o.write.dry_run) return deleted_answer(t, cur);
    std::vector<Op> ops = {Op::remove(cur.kv.key, cur.kv.mod_revision)};
    if (cur.status_kv) ops.push_back(Op::remove(cur.status_kv->key));
    auto txn = store.txn(std::move(ops));
    if (!txn.ok()) return from_store(txn.status());
    Loaded gone = cur;
    gone.resource_version = txn->revision;
    return deleted_answer(t, gone);
  }

  // The autoscaling/v1 Scale of a kind with spec.replicas (kinds/workload_common.h): GET reads
  // it; PUT and PATCH change spec.replicas through the ordinary update.
  Response scale(const Request& req, const Kind& t, const std::string& ns, const std::string& name,
                 const Identity& who, const Permissions& p) {
    bool dry_run = false;
    if (req.method != "GET") {
      auto wo = write_options(req, "UpdateOptions");
      if (failed(wo)) return failure_response(std::get<Failure>(wo));
      dry_run = std::get<WriteOptions>(wo).dry_run;
    }
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto current = load(t, ns, name);
      if (failed(current)) return failure_response(std::get<Failure>(current));
      auto& cur = std::get<std::optional<Loaded>>(current);
      if (!cur) return failure_response(not_found(t.plural, name));
      json obj = render(t, *cur);
      json scale = kinds::scale_of(obj);
      if (req.method == "GET") return json_response(200, scale);
      auto body = parse_body(req);
      if (failed(body)) return failure_response(std::get<Failure>(body));
      const json& doc = std::get<json>(body);
      json wanted = doc;
      if (req.method == "PATCH") {
        std::string type = req.header("Content-Type").value_or("");
        type = type.substr(0, type.find(';'));
        auto patched = type == "application/json-patch+json" ? apply_json_patch(scale, doc)
                                                             : apply_merge_patch(scale, doc);
        if (!patched.ok()) return failure_response(bad_request(patched.status().message()));
        wanted = std::move(patched).value();
      }
      auto replicas = kinds::replicas_of_scale(wanted);
      if (!replicas.ok())
        return failure_response(invalid(fmt::format("Scale.autoscaling \"{}\" is invalid: {}", name,
                                                    replicas.status().message())));
      Revision expect = 0;
      if (req.method == "PUT") {
        auto based_on = body_revision(wanted);
        if (failed(based_on)) return failure_response(std::get<Failure>(based_on));
        expect = std::get<Revision>(based_on);
      }
      json updated = cur->object;
      updated["spec"]["replicas"] = *replicas;
      Response r = write_update(t, *cur, std::move(updated), expect, who, p, 200, dry_run);
      if (r.status == 409 && expect == 0) continue;
      if (r.status != 200) return r;
      json written = json::parse(r.body, nullptr, false);
      return json_response(200, kinds::scale_of(written.is_object() ? written : obj));
    }
    return failure_response(
        {409, "Conflict",
         fmt::format("{} \"{}\" kept changing while it was scaled; try again", t.plural, name)});
  }

  Outcome<DeleteOptions> delete_options_of(const Request& req) {
    if (req.body.empty()) return delete_options(req, nullptr);
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return bad_request("the DeleteOptions body is not valid JSON");
    return delete_options(req, &body);
  }

  Response remove(const Request& req, const Kind& t, const std::string& ns, const std::string& name,
                  const Identity& who, const Permissions& p) {
    auto o = delete_options_of(req);
    if (failed(o)) return failure_response(std::get<Failure>(o));
    auto current = load(t, ns, name);
    if (failed(current)) return failure_response(std::get<Failure>(current));
    auto& cur = std::get<std::optional<Loaded>>(current);
    if (!cur) return failure_response(not_found(t.plural, name));
    auto answer = delete_object(t, *cur, std::get<DeleteOptions>(o), who, p);
    if (failed(answer)) return failure_response(std::get<Failure>(answer));
    return json_response(200, std::get<json>(answer));
  }

  // DELETE on a collection: every object the selectors match (and the caller may see) is deleted
  // as a single DELETE would; the answer lists them as they were left (graceful pods with their
  // deletionTimestamp). Stops at the first refusal (those before it stay deleted, as in kube).
  Response delete_collection(const Request& req, const Kind& t, const std::string& ns,
                             const Filter& filter, const Identity& who, const Permissions& p) {
    auto o = delete_options_of(req);
    if (failed(o)) return failure_response(std::get<Failure>(o));
    ListOptions lo;
    lo.prefix = t.list_prefix(ns);
    auto page = store.list(lo);
    if (!page.ok()) return failure_response(internal(page.status()));
    json items = json::array();
    for (auto& kv : page->items) {
      if (t.namespaced && kv.key.substr(t.prefix.size()).find('/') == std::string::npos) continue;
      auto l = decode(t, std::move(kv), page->revision);
      if (failed(l)) continue;
      const Loaded& cur = std::get<Loaded>(l);
      if (!filter.matches(*this, t, render(t, cur))) continue;
      auto answer = delete_object(t, cur, std::get<DeleteOptions>(o), who, p);
      if (failed(answer)) {
        // Already gone (deleted concurrently) is not a failure of the collection.
        if (std::get<Failure>(answer).code == 404) continue;
        return failure_response(std::get<Failure>(answer));
      }
      json& a = std::get<json>(answer);
      items.push_back(a.value("kind", "") == "Status" ? render(t, cur) : std::move(a));
    }
    return json_response(
        200, {{"kind", t.list_kind()},
              {"apiVersion", t.api_version()},
              {"metadata", {{"resourceVersion", std::to_string(store.current_revision())}}},
              {"items", std::move(items)}});
  }

  // ----- subresources -------------------------------------------------------------------

  // PUT or PATCH of NAME/status: only the status changes (spec and metadata in the body are
  // ignored, as kube-apiserver does). Observed status (pods, nodes) is folded into the
  // StoredStatus by the kind; the node's next full report replaces it.
  Response write_status(const Request& req, const Kind& t, const std::string& ns,
                        const std::string& name, const Identity& who, const Permissions& p) {
    bool is_patch = req.method == "PATCH";
    auto opts = write_options(req, is_patch ? "PatchOptions" : "UpdateOptions");
    if (failed(opts)) return failure_response(std::get<Failure>(opts));
    bool dry_run = std::get<WriteOptions>(opts).dry_run;
    auto body = parse_body(req);
    if (failed(body)) return failure_response(std::get<Failure>(body));
    const json& doc = std::get<json>(body);
    auto current = load(t, ns, name);
    if (failed(current)) return failure_response(std::get<Failure>(current));
    auto& cur = std::get<std::optional<Loaded>>(current);
    if (!cur) return failure_response(not_found(t.plural, name));
    if (auto f = check_object(who, p, t, cur->object, true)) return failure_response(*f);
    json obj;
    if (is_patch) {
      auto patched = apply_patch(req, render(t, *cur), doc);
      if (failed(patched)) return failure_response(std::get<Failure>(patched));
      obj = std::move(std::get<json>(patched));
    } else {
      obj = doc;
    }
    if (auto f = check_identity(t, obj, ns, name)) return failure_response(*f);
    auto based_on = body_revision(doc);
    if (failed(based_on)) return failure_response(std::get<Failure>(based_on));
    if (Revision expect = std::get<Revision>(based_on); expect && expect != cur->resource_version)
      return failure_response(
          {409, "Conflict",
           fmt::format("Operation cannot be fulfilled on {} \"{}\": the object has been modified; "
                       "please apply your changes to the latest version and try again",
                       t.plural, name)});
    json status = obj.value("status", json::object());
    Loaded next = *cur;
    std::vector<Op> ops;
    if (t.status == StatusSource::kObserved && t.write_status) {
      v1::StoredStatus st = cur->status_kv ? cur->status : v1::StoredStatus();
      auto folded = t.write_status(status, st);
      if (!folded.ok())
        return failure_response(
            invalid(fmt::format("{} \"{}\" is invalid: {}", t.kind, name, folded.message())));
      st.set_uid(str_at(cur->object, "metadata.uid"));
      st.set_changed_at(std::chrono::duration_cast<std::chrono::milliseconds>(
                            clock.system_now().time_since_epoch())
                            .count());
      next.status = st;
      KeyValue skv;
      skv.key = t.status_key(ns, name);
      next.status_kv = skv;
      ops.push_back(Op::put(skv.key, st.SerializeAsString(),
                            cur->status_kv ? cur->status_kv->mod_revision : 0));
    } else if (t.status == StatusSource::kInObject) {
      next.object["status"] = status;
      auto stored = to_stored(t, next.object);
      if (failed(stored)) return failure_response(std::get<Failure>(stored));
      ops.push_back(Op::put(cur->kv.key, std::get<v1::StoredObject>(stored).SerializeAsString(),
                            cur->kv.mod_revision));
    } else {
      return failure_response(
          {405, "MethodNotAllowed", fmt::format("{} have no writable status", t.plural)});
    }
    if (dry_run) return json_response(200, render(t, next));
    auto txn = store.txn(std::move(ops));
    if (!txn.ok()) {
      if (txn.status().code() == Code::kFailedPrecondition)
        return failure_response(
            {409, "Conflict",
             fmt::format("Operation cannot be fulfilled on {} \"{}\": the object has been "
                         "modified; please apply your changes to the latest version and try again",
                         t.plural, name)});
      return failure_response(internal(txn.status()));
    }
    if (next.status_kv) next.status_kv->mod_revision = txn->revision;
    next.resource_version = txn->revision;
    return json_response(200, render(t, next));
  }

  // POST NAME/eviction (policy/v1 Eviction, what `kubectl drain` sends): a DELETE of the pod with
  // the Eviction's deleteOptions. Gantry has no PodDisruptionBudgets, so an eviction is never
  // refused for budget reasons (429 in kube).
  Response evict(const Request& req, const Kind& t, const std::string& ns, const std::string& name,
                 const Identity& who, const Permissions& p) {
    auto body = parse_body(req);
    if (failed(body)) return failure_response(std::get<Failure>(body));
    const json& ev = std::get<json>(body);
    if (!ev.is_object()) return failure_response(bad_request("the Eviction must be a JSON object"));
    if (ev.contains("kind") && ev["kind"] != "Eviction")
      return failure_response(
          bad_request(fmt::format("the body's kind {} is not Eviction", ev["kind"].dump())));
    if (ev.contains("apiVersion") && ev["apiVersion"] != "policy/v1" &&
        ev["apiVersion"] != "policy/v1beta1")
      return failure_response(bad_request(fmt::format(
          "apiVersion {} is not policy/v1 (or policy/v1beta1)", ev["apiVersion"].dump())));
    std::string body_name = ev.is_object() ? str_at(ev, "metadata.name") : "";
    if (!body_name.empty() && body_name != name)
      return failure_response(bad_request(fmt::format(
          "name in URL does not match name in Eviction object ({} != {})", name, body_name)));
    const json* delete_body = ev.contains("deleteOptions") ? &ev["deleteOptions"] : nullptr;
    auto o = delete_options(req, delete_body);
    if (failed(o)) return failure_response(std::get<Failure>(o));
    auto current = load(t, ns, name);
    if (failed(current)) return failure_response(std::get<Failure>(current));
    auto& cur = std::get<std::optional<Loaded>>(current);
    if (!cur) return failure_response(not_found(t.plural, name));
    auto answer = delete_object(t, *cur, std::get<DeleteOptions>(o), who, p);
    if (failed(answer)) return failure_response(std::get<Failure>(answer));
    return json_response(201, {{"kind", "Status"},
                               {"apiVersion", "v1"},
                               {"metadata", json::object()},
                               {"status", "Success"},
                               {"code", 201}});
  }

  // ----- watch --------------------------------------------------------------------------

  Response watch(Request& req, const Kind& t, const std::string& ns, Filter filter);

  // ----- pods/log -----------------------------------------------------------------------

  Response logs(Request& req, const Kind& t, const std::string& ns, const std::string& name,
                const Identity& who, const Permissions& p);
  void end_log(const std::shared_ptr<LogSession>& session);

  // ----- pods/exec, pods/attach ---------------------------------------------------------

  Response exec(Request& req, const Kind& t, const std::string& ns, const std::string& name,
                const Identity& who, const Permissions& p, bool attach);

  // ----- provinces ----------------------------------------------------------------------

  json province(const std::string& name, const Permissions& p);
  const Kind& province_kind() const {
    const Kind* k = kinds.find("gantry.io", "v1", "provinces");
    return k ? *k : *builtin_kinds().find("gantry.io", "v1", "provinces");
  }
  Response provinces(const Request& req, const std::string& name, const Identity& who,
                     const Permissions& p);

  // ----- dispatch -----------------------------------------------------------------------

  Response handle(Request& req);
  Response handle_resource(Request& req, const Identity& who, const Permissions& p);
};

// ---------------------------------------------------------------------------------------------
// Watch: one store watch per client (one store thread each: fine for now, see docs/api.md).

struct ApiServer::Impl::Watch : std::enable_shared_from_this<ApiServer::Impl::Watch> {
  std::mutex mu;
  std::unique_ptr<WatchHandle> handle;
  std::shared_ptr<common::ResponseStream> stream;
  common::TimerHandle bookmark_timer;
  common::TimerHandle timeout_timer;
  Revision last_revision = 0;
  bool done = false;
  bool table = false;
  bool first_table = true;
  bool bookmarks = false;

  common::EventLoop* loop = nullptr;
  std::chrono::milliseconds interval{0};
  std::string kind;
  std::string api_version;

  // Ends the watch once: stops its timers and closes the response. Returns false when it had
  // already ended; otherwise the store watch, which the caller drops outside `mu` (its thread
  // may be waiting for `mu` in a callback).
  bool end(std::unique_ptr<WatchHandle>& out) {
    std::lock_guard lock(mu);
    if (done) return false;
    done = true;
    out = std::move(handle);
    bookmark_timer.cancel();
    timeout_timer.cancel();
    stream->close();
    return true;
  }

  // Called with mu held. The timer holds only a weak pointer, so a finished watch frees its state.
  void arm_bookmark() {
    bookmark_timer = loop->schedule(interval, [weak = weak_from_this()] {
      auto w = weak.lock();
      if (!w) return;
      std::lock_guard lock(w->mu);
      if (w->done) return;
      w->send("BOOKMARK", {{"kind", w->kind},
                           {"apiVersion", w->api_version},
                           {"metadata", {{"resourceVersion", std::to_string(w->last_revision)}}}});
      w->arm_bookmark();
    });
  }

  bool send(const std::string& type, const json& object) {
    std::string line = json{{"type", type}, {"object", object}}.dump() + "\n";
    return stream->write(std::move(line));
  }
};

Response ApiServer::Impl::watch(Request& req, const Kind& t, const std::string& ns, Filter filter) {
  auto w = std::make_shared<Watch>();
  w->table = wants_table(req);
  auto bookmarks =
      common::parse_bool_param("allowWatchBookmarks", query(req, "allowWatchBookmarks"));
  if (!bookmarks.ok()) return failure_response(bad_param(bookmarks.status()));
  w->bookmarks = bookmarks->value_or(false);
  std::string rv_text = query(req, "resourceVersion").value_or("");
  Revision from = 0;
  if (auto parsed = parse_revision(rv_text); !parsed) {
    return failure_response(bad_request(
        fmt::format("resourceVersion: \"{}\" is not a valid resource version", rv_text)));
  } else {
    from = *parsed;
  }
  // A revision not reached yet: answered, not left waiting for events that were never sent.
  if (Revision current = store.current_revision(); from > current)
    return failure_response(too_large_resource_version(from, current));
  std::string prefix = t.list_prefix(ns);
  std::string status_prefix =
      t.status_prefix.empty()
          ? ""
          : (t.namespaced && !ns.empty() ? t.status_prefix + ns + "/" : t.status_prefix);
  // Objects and their statuses live under different prefixes; one watch on both keeps the order.
  std::string watch_prefix = status_prefix.empty() ? prefix : "/";

  auto self = shared_from_this();
  auto render_one = [self, &t](const json& obj, bool first, bool table) {
    if (!table) return obj;
    json tbl = render_table(t.table_columns(), {obj}, str_at(obj, "metadata.resourceVersion"),
                            self->clock.system_now());
    if (!first) tbl["columnDefinitions"] = json::array();
    return tbl;
  };

  // Initial state when no resourceVersion was given: ADDED for every current match.
  std::vector<json> initial;
  if (from == 0) {
    ListOptions lo;
    lo.prefix = prefix;
    auto page = store.list(lo);
    if (!page.ok()) return failure_response(internal(page.status()));
    from = page->revision;
    for (auto& kv : page->items) {
      if (t.namespaced && kv.key.substr(t.prefix.size()).find('/') == std::string::npos) continue;
      auto l = decode(t, std::move(kv), from);
      if (failed(l)) continue;
      json obj = render(t, std::get<Loaded>(l));
      if (filter.matches(*this, t, obj)) initial.push_back(std::move(obj));
    }
  }

  int64_t timeout_s = options.max_watch_timeout.count();
  auto asked_timeout = common::parse_int64_param("timeoutSeconds", query(req, "timeoutSeconds"));
  if (!asked_timeout.ok()) return failure_response(bad_param(asked_timeout.status()));
  if (*asked_timeout && **asked_timeout > 0) timeout_s = std::min(timeout_s, **asked_timeout);

  w->stream =
      req.stream(200, {{"Content-Type", "application/json"}, {"Cache-Control", "no-cache"}});
  if (!w->stream)
    return failure_response(internal(common::make_error(Code::kInternal, "no stream")));
  w->last_revision = from;
  ++stats.watches_open;

  auto finish = [self, w]() {
    std::unique_ptr<WatchHandle> handle;
    if (!w->end(handle)) return;
    handle.reset();
    --self->stats.watches_open;
    std::lock_guard lock(self->watches_mu);
    self->watches.erase(w);
  };
  {
    std::lock_guard lock(watches_mu);
    if (stopped) {
      w->stream->close();
      return {};
    }
    watches.insert(w);
  }
  w->stream->on_closed([finish] { finish(); });

  {
    std::lock_guard lock(w->mu);
    for (const auto& obj : initial) {
      w->send("ADDED", render_one(obj, w->first_table, w->table));
      w->first_table = false;
    }
  }

  const Kind* type = &t;
  WatchCallbacks cbs;
  cbs.on_events = [self, w, type, prefix, status_prefix, filter, render_one,
                   finish](const std::vector<Event>& events) {
    const Kind& t = *type;
    Impl& impl = *self;
    std::vector<std::pair<std::string, json>> out;
    Revision rev = events.empty() ? 0 : events.front().kv.mod_revision;
    for (const auto& ev : events) {
      bool is_object = ev.kv.key.starts_with(prefix);
      bool is_status = !status_prefix.empty() && ev.kv.key.starts_with(status_prefix);
      if (!is_object && !is_status) continue;
      if (t.namespaced && is_object &&
          ev.kv.key.substr(t.prefix.size()).find('/') == std::string::npos)
        continue;
      std::optional<json> before;
      std::optional<json> after;
      auto rendered = [&](const KeyValue& object_kv,
                          const KeyValue* status_kv) -> std::optional<json> {
        v1::StoredObject stored;
        if (!stored.ParseFromString(object_kv.value)) return std::nullopt;
        Loaded l;
        l.object = json::parse(stored.json(), nullptr, false);
        if (!l.object.is_object()) return std::nullopt;
        l.resource_version = rev;
        if (status_kv && l.status.ParseFromString(status_kv->value)) l.status_kv = *status_kv;
        return impl.render(t, l);
      };
      if (is_object) {
        std::optional<KeyValue> skv;
        if (!status_prefix.empty()) {
          std::string skey = t.status_prefix + ev.kv.key.substr(t.prefix.size());
          auto s = impl.store.get(skey, rev);
          if (!s.ok()) s = impl.store.get(skey, 0);
          if (s.ok() && *s) skv = **s;
        }
        if (ev.prev) before = rendered(*ev.prev, skv ? &*skv : nullptr);
        if (ev.type == EventType::kPut) after = rendered(ev.kv, skv ? &*skv : nullptr);
      } else {
        std::string okey = t.prefix + ev.kv.key.substr(t.status_prefix.size());
        auto o = impl.store.get(okey, rev);
        if (!o.ok()) o = impl.store.get(okey, 0);
        if (!o.ok() || !*o)
          continue;  // a status without its object (deleted together) says nothing
        if (ev.prev) {
          before = rendered(**o, &*ev.prev);
        } else {
          before = rendered(**o, nullptr);
        }
        if (ev.type == EventType::kPut) {
          after = rendered(**o, &ev.kv);
        } else {
          after = rendered(**o, nullptr);
        }
      }
      bool was = before && filter.matches(impl, t, *before);
      bool is = after && filter.matches(impl, t, *after);
      if (is && !was) {
        out.emplace_back("ADDED", *after);
      } else if (is && was) {
        out.emplace_back("MODIFIED", *after);
      } else if (was && !is) {
        json gone = after ? *after : *before;
        gone["metadata"]["resourceVersion"] = std::to_string(rev);
        out.emplace_back("DELETED", gone);
      }
    }
    std::lock_guard lock(w->mu);
    if (w->done) return;
    w->last_revision = std::max(w->last_revision, rev);
    for (const auto& [type_name, obj] : out) {
      if (!w->send(type_name, render_one(obj, w->first_table, w->table))) {
        impl.loop.post(finish);
        return;
      }
      w->first_table = false;
    }
  };
  cbs.on_error = [self, w, finish](const common::Status& s) {
    {
      std::lock_guard lock(w->mu);
      if (w->done) return;
      Failure f =
          s.code() == Code::kOutOfRange || s.code() == Code::kResourceExhausted
              ? Failure{410, "Expired",
                        fmt::format(
                            "the watch fell behind or its start was compacted ({}); list again",
                            s.message())}
              : internal(s);
      w->send("ERROR", status_json(f));
    }
    self->loop.post(finish);
  };
  auto handle = store.watch(watch_prefix, from, std::move(cbs));
  if (!handle.ok()) {
    Failure f = handle.status().code() == Code::kOutOfRange
                    ? Failure{410, "Expired",
                              fmt::format("too old resource version: {} ({})", from,
                                          handle.status().message())}
                    : internal(handle.status());
    {
      std::lock_guard lock(w->mu);
      w->send("ERROR", status_json(f));
    }
    finish();
    return {};
  }
  {
    std::lock_guard lock(w->mu);
    if (w->done) return {};  // the client already left: the handle dies with this scope
    w->handle = std::move(handle).value();
    w->timeout_timer = loop.schedule(std::chrono::seconds(timeout_s), finish);
    if (w->bookmarks) {
      w->loop = &loop;
      w->interval = options.bookmark_interval;
      w->kind = t.kind;
      w->api_version = t.api_version();
      w->arm_bookmark();
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// pods/log: the request goes through the hub to the pod's node, whose edgecore reads the CRI log
// file. The answer waits (deferred) until the node accepts or refuses, so that "no such container"
// is a 404 Status; then the body streams as the node sends. Flow control: what the client has
// taken (on_drain) is what the node may send next, so a slow client holds at most a window here.

namespace {

std::string reason_for(uint32_t code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 429:
      return "TooManyRequests";
    case 501:
      return "NotImplemented";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "InternalError";
  }
}

}  // namespace

struct ApiServer::Impl::LogSession {
  std::mutex mu;
  std::shared_ptr<common::DeferredResponse> deferred;  // until the answer starts
  std::shared_ptr<common::ResponseStream> stream;      // the body, once started
  std::unique_ptr<LogStreamer::Stream> upstream;
  bool done = false;
};

void ApiServer::Impl::end_log(const std::shared_ptr<LogSession>& session) {
  std::unique_ptr<LogStreamer::Stream> upstream;
  {
    std::lock_guard lock(session->mu);
    if (session->done) return;
    session->done = true;
    upstream = std::move(session->upstream);
    if (session->stream) session->stream->close();
    if (session->deferred) {
      session->deferred->respond(
          failure_response({503, "ServiceUnavailable", "cloudcore is stopping"}));
      session->deferred.reset();
    }
  }
  upstream.reset();  // StreamClose to the node
  --stats.logs_open;
  std::lock_guard lock(watches_mu);
  log_sessions.erase(session);
}

Response ApiServer::Impl::logs(Request& req, const Kind& t, const std::string& ns,
                               const std::string& name, const Identity& who, const Permissions& p) {
  ++stats.log_requests;
  auto cur = load(t, ns, name);
  if (failed(cur)) return failure_response(std::get<Failure>(cur));
  auto& l = std::get<std::optional<Loaded>>(cur);
  if (!l) return failure_response(not_found("pods", name));
  if (auto f = check_object(who, p, t, l->object, false)) return failure_response(*f);

  v1::LogRequest lr;
  lr.set_namespace_(ns);
  lr.set_pod(name);
  lr.set_tail_lines(-1);
  for (const char* flag : {"follow", "timestamps", "previous"}) {
    auto b = common::parse_bool_param(flag, query(req, flag));
    if (!b.ok()) return failure_response(bad_param(b.status()));
    if (!*b) continue;
    if (std::string_view(flag) == "follow") lr.set_follow(**b);
    if (std::string_view(flag) == "timestamps") lr.set_timestamps(**b);
    if (std::string_view(flag) == "previous") lr.set_previous(**b);
  }
  auto tail = common::parse_int64_param("tailLines", query(req, "tailLines"), 0);
  if (!tail.ok()) return failure_response(bad_param(tail.status()));
  auto limit = common::parse_int64_param("limitBytes", query(req, "limitBytes"), 1);
  if (!limit.ok()) return failure_response(bad_param(limit.status()));
  auto since = common::parse_int64_param("sinceSeconds", query(req, "sinceSeconds"), 1);
  if (!since.ok()) return failure_response(bad_param(since.status()));
  auto since_time = common::parse_rfc3339_param("sinceTime", query(req, "sinceTime"));
  if (!since_time.ok()) return failure_response(bad_param(since_time.status()));
  if (*tail) lr.set_tail_lines(**tail);
  if (*limit) lr.set_limit_bytes(**limit);
  if (*since) lr.set_since_seconds(**since);
  if (*since_time) {
    if (*since)
      return failure_response(
          bad_request("at most one of sinceTime or sinceSeconds may be specified"));
    // The node counts back from its own clock: sent as seconds before now (at least 1).
    auto back = std::chrono::duration_cast<std::chrono::seconds>(clock.system_now() - **since_time);
    lr.set_since_seconds(std::max<int64_t>(1, back.count()));
  }

  // The container: the one asked for (a container or an init container of the pod), else the
  // pod's only container.
  std::vector<std::string> containers, init_containers;
  const json& spec = l->object.contains("spec") ? l->object["spec"] : json::object();
  for (const auto& [list, out] :
       {std::pair<const char*, std::vector<std::string>*>{"containers", &containers},
        {"initContainers", &init_containers}}) {
    if (!spec.is_object() || !spec.contains(list) || !spec[list].is_array()) continue;
    for (const auto& c : spec[list])
      if (c.is_object() && c.contains("name") && c["name"].is_string())
        out->push_back(c["name"].get<std::string>());
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
    return out;
  };
  std::string container = query(req, "container").value_or("");
  if (container.empty()) {
    if (containers.size() != 1) {
      std::string msg =
          fmt::format("a container name must be specified for pod {}, choose one of: [{}]", name,
                      join(containers));
      if (!init_containers.empty())
        msg += fmt::format(" or one of the init containers: [{}]", join(init_containers));
      return failure_response(bad_request(msg));
    }
    container = containers.front();
  } else if (std::find(containers.begin(), containers.end(), container) == containers.end() &&
             std::find(init_containers.begin(), init_containers.end(), container) ==
                 init_containers.end()) {
    return failure_response(
        bad_request(fmt::format("container {} is not valid for pod {}", container, name)));
  }
  lr.set_container(container);

  std::string node = str_at(l->object, "spec.nodeName");
  if (node.empty())
    return failure_response(
        bad_request(fmt::format("pod {} does not have a host assigned: it is not scheduled to a "
                                "node yet, so it has no logs",
                                name)));
  if (!options.logs)
    return failure_response(
        {501, "NotImplemented",
         "this cloudcore serves no container logs (no tunnel to the edge nodes)"});

  auto session = std::make_shared<LogSession>();
  session->deferred = req.defer();
  if (!session->deferred)
    return failure_response(internal(common::make_error(Code::kInternal, "cannot defer")));
  {
    std::lock_guard lock(watches_mu);
    if (stopped) {
      session->deferred->respond(
          failure_response({503, "ServiceUnavailable", "cloudcore is stopping"}));
      return {};
    }
    log_sessions.insert(session);
  }
  ++stats.logs_open;

  auto self = shared_from_this();
  std::weak_ptr<LogSession> weak = session;
  // Called with session->mu held.
  auto start_body = [self, weak](LogSession& s) {
    if (s.stream || !s.deferred) return;
    s.stream =
        s.deferred->stream(200, {{"Content-Type", "text/plain"}, {"Cache-Control", "no-cache"}});
    s.deferred.reset();
    s.stream->on_drain([weak](size_t n) {
      auto s = weak.lock();
      if (!s) return;
      std::lock_guard lock(s->mu);
      if (s->upstream) s->upstream->consumed(n);
    });
    // The client went away (or read too slowly): end the stream to the node. Posted, as on_closed
    // may run right here with s.mu held.
    s.stream->on_closed([self, weak] {
      self->loop.post([self, weak] {
        if (auto s = weak.lock()) self->end_log(s);
      });
    });
  };
  LogStreamer::Callbacks cbs;
  cbs.on_ready = [weak, start_body] {
    auto s = weak.lock();
    if (!s) return;
    std::lock_guard lock(s->mu);
    if (!s->done) start_body(*s);
  };
  cbs.on_data = [self, weak, start_body](std::string data) {
    auto s = weak.lock();
    if (!s) return;
    std::lock_guard lock(s->mu);
    if (s->done) return;
    start_body(*s);
    if (!s->stream->write(std::move(data))) {
      self->loop.post([self, weak] {
        if (auto s = weak.lock()) self->end_log(s);
      });
    }
  };
  cbs.on_close = [self, weak, pod = ns + "/" + name](std::string error, uint32_t code) {
    auto s = weak.lock();
    if (!s) return;
    std::unique_ptr<LogStreamer::Stream> upstream;
    {
      std::lock_guard lock(s->mu);
      if (s->done) return;
      s->done = true;
      upstream = std::move(s->upstream);
      if (s->stream) {
        // Output was already sent: an error can only cut the body short, which the client sees
        // as a truncated response (kubectl: "unexpected EOF") instead of a complete log.
        if (error.empty()) {
          s->stream->close();
        } else {
          spdlog::info("api: logs of pod {} cut short: {}", pod, error);
          s->stream->abort();
        }
      } else if (s->deferred) {
        if (error.empty()) {
          s->deferred->respond(Response{200, {{"Content-Type", "text/plain"}}, ""});
        } else {
          s->deferred->respond(failure_response({static_cast<int>(code), reason_for(code), error}));
        }
        s->deferred.reset();
      }
    }
    upstream.reset();
    --self->stats.logs_open;
    std::lock_guard lock(self->watches_mu);
    self->log_sessions.erase(s);
  };
  auto opened = options.logs->open(node, lr, std::move(cbs));
  if (!opened.ok()) {
    const auto& st = opened.status();
    int code = st.code() == Code::kUnavailable ? 503 : st.code() == Code::kNotFound ? 404 : 500;
    std::string message = fmt::format("cannot read the logs of pod \"{}\": {}", name, st.message());
    {
      std::lock_guard lock(session->mu);
      session->done = true;
      if (session->deferred)
        session->deferred->respond(failure_response({code, reason_for(code), message}));
      session->deferred.reset();
    }
    --stats.logs_open;
    std::lock_guard lock(watches_mu);
    log_sessions.erase(session);
    return {};
  }
  std::unique_ptr<LogStreamer::Stream> late;
  {
    std::lock_guard lock(session->mu);
    if (session->done) {
      late = std::move(opened).value();  // it already ended (callbacks ran first)
    } else {
      session->upstream = std::move(opened).value();
    }
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// pods/exec and pods/attach: kubectl >= 1.30 asks for a WebSocket with subprotocol
// v5.channel.k8s.io (v4.channel.k8s.io is served too); each message starts with its channel: 0
// stdin, 1 stdout, 2 stderr, 3 the final metav1.Status, 4 terminal resize ({"Width","Height"}),
// and in v5 [255, channel] ends that channel (stdin EOF). Everything the cloud can check is
// checked before the 101 (so that the SPDY request kubectl retries with gets the same answer);
// what only the node knows ("container is not running" there, a runtime error) ends the session
// with a Failure Status on channel 3. Older kubectl speaks SPDY/3.1 only: it gets a 400 saying
// so.

namespace {

constexpr std::string_view kExecV5 = "v5.channel.k8s.io";
constexpr std::string_view kExecV4 = "v4.channel.k8s.io";

std::string exec_status_json(int exit_code, const std::vector<std::string>& command) {
  if (exit_code == 0) return R"({"metadata":{},"status":"Success"})";
  std::string cmd;
  for (const auto& c : command) cmd += (cmd.empty() ? "" : " ") + c;
  json status = {
      {"metadata", json::object()},
      {"status", "Failure"},
      {"message", fmt::format("command terminated with non-zero exit code: error executing "
                              "command [{}], exit code {}",
                              cmd, exit_code)},
      {"reason", "NonZeroExitCode"},
      {"details",
       {{"causes",
         json::array({{{"reason", "ExitCode"}, {"message", std::to_string(exit_code)}}})}}}};
  return status.dump();
}

std::string failure_status_json(const std::string& message, uint32_t code) {
  json status = {{"metadata", json::object()},
                 {"status", "Failure"},
                 {"message", message},
                 {"reason", reason_for(code)},
                 {"code", code}};
  return status.dump();
}

// The kubectl side of one exec/attach session: the upgraded WebSocket and the tunnel stream.
struct ExecSession : std::enable_shared_from_this<ExecSession> {
  static constexpr size_t kMaxInputInFlight = 256 * 1024;

  std::mutex mu;
  std::shared_ptr<common::WsConnection> conn;  // once upgraded
  std::vector<std::string> early;              // messages from the node before that
  std::unique_ptr<LogStreamer::Stream> upstream;
  std::vector<std::string> command;
  bool v5 = true;
  bool ended = false;
  size_t input_in_flight = 0;
  bool paused = false;
  std::atomic<int64_t>* open_gauge = nullptr;

  void to_client(std::string message) {
    std::lock_guard lock(mu);
    if (conn) {
      conn->send(std::move(message));
    } else {
      early.push_back(std::move(message));
    }
  }
  void close_client() {
    std::lock_guard lock(mu);
    ended = true;
    if (conn) conn->close("");
  }
  void input(std::string data, bool eof) {
    std::lock_guard lock(mu);
    if (!upstream) return;
    input_in_flight += data.size();
    if (input_in_flight > kMaxInputInFlight && conn && !paused) {
      paused = true;
      conn->pause_reading(true);
    }
    std::weak_ptr<ExecSession> weak = shared_from_this();
    const size_t size = data.size();
    upstream->send_input(std::move(data), eof, [weak, size] {
      auto s = weak.lock();
      if (!s) return;
      std::lock_guard lock(s->mu);
      s->input_in_flight -= std::min(size, s->input_in_flight);
      if (s->paused && s->input_in_flight <= kMaxInputInFlight / 2 && s->conn) {
        s->paused = false;
        s->conn->pause_reading(false);
      }
    });
  }
};

class ExecHandler final : public common::WsHandler {
 public:
  explicit ExecHandler(std::shared_ptr<ExecSession> session) : session_(std::move(session)) {}
  ~ExecHandler() override {
    std::unique_ptr<LogStreamer::Stream> upstream;
    {
      std::lock_guard lock(session_->mu);
      upstream = std::move(session_->upstream);  // StreamClose to the node, if still open
      session_->conn.reset();
    }
    if (session_->open_gauge) --*session_->open_gauge;
  }

  void on_open(std::shared_ptr<common::WsConnection> connection) override {
    std::lock_guard lock(session_->mu);
    session_->conn = connection;
    for (auto& m : session_->early) connection->send(std::move(m));
    session_->early.clear();
    if (session_->ended) connection->close("");
  }

  void on_message(std::string_view data) override {
    if (data.empty()) return;
    const auto channel = static_cast<uint8_t>(data[0]);
    std::string_view body = data.substr(1);
    if (channel == 0) {
      if (!body.empty()) session_->input(std::string(body), false);
    } else if (channel == 4) {
      auto j = json::parse(body, nullptr, false);
      if (j.is_object() && j.contains("Width") && j.contains("Height") &&
          j["Width"].is_number_unsigned() && j["Height"].is_number_unsigned()) {
        std::lock_guard lock(session_->mu);
        if (session_->upstream)
          session_->upstream->resize(j["Width"].get<uint32_t>(), j["Height"].get<uint32_t>());
      }
    } else if (channel == 255 && session_->v5 && body.size() == 1 && body[0] == 0) {
      session_->input("", true);  // stdin ended
    }
  }

  void on_close(std::string_view reason) override { (void)reason; }

 private:
  std::shared_ptr<ExecSession> session_;
};

}  // namespace

Response ApiServer::Impl::exec(Request& req, const Kind& t, const std::string& ns,
                               const std::string& name, const Identity& who, const Permissions& p,
                               bool attach) {
  ++stats.exec_requests;
  const std::string what = attach ? "attach" : "exec";
  auto cur = load(t, ns, name);
  if (failed(cur)) return failure_response(std::get<Failure>(cur));
  auto& l = std::get<std::optional<Loaded>>(cur);
  if (!l) return failure_response(not_found("pods", name));
  // Running a command in a pod changes it: the province's write access, as kube's `create` on
  // pods/exec.
  if (auto f = check_object(who, p, t, l->object, true)) return failure_response(*f);

  v1::ExecRequest er;
  er.set_namespace_(ns);
  er.set_pod(name);
  er.set_attach(attach);
  for (const auto& [key, value] : req.query)
    if (key == "command") er.add_command(value);
  bool flags[4] = {false, false, false, false};
  const char* names[4] = {"stdin", "stdout", "stderr", "tty"};
  for (int i = 0; i < 4; ++i) {
    auto b = common::parse_bool_param(names[i], query(req, names[i]));
    if (!b.ok()) return failure_response(bad_param(b.status()));
    flags[i] = b->value_or(false);
  }
  er.set_stdin(flags[0]);
  er.set_stdout(flags[1]);
  er.set_stderr(flags[2] && !flags[3]);
  er.set_tty(flags[3]);
  if (!attach && er.command().empty())
    return failure_response(bad_request("you must specify at least one command for the container"));
  if (!er.stdin() && !er.stdout() && !flags[2])
    return failure_response(bad_request("you must specify at least 1 of stdin, stdout, stderr"));

  // The container: the one asked for, else the pod's only one.
  std::vector<std::string> containers;
  const json& spec = l->object.contains("spec") ? l->object["spec"] : json::object();
  for (const char* list : {"containers", "initContainers"}) {
    if (!spec.is_object() || !spec.contains(list) || !spec[list].is_array()) continue;
    for (const auto& c : spec[list])
      if (c.is_object() && c.contains("name") && c["name"].is_string())
        containers.push_back(c["name"].get<std::string>());
  }
  std::string container = query(req, "container").value_or("");
  if (container.empty()) {
    if (containers.size() != 1) {
      std::string all;
      for (const auto& c : containers) all += (all.empty() ? "" : " ") + c;
      return failure_response(bad_request(fmt::format(
          "a container name must be specified for pod {}, choose one of: [{}]", name, all)));
    }
    container = containers.front();
  } else if (std::find(containers.begin(), containers.end(), container) == containers.end()) {
    return failure_response(
        bad_request(fmt::format("container {} is not valid for pod {}", container, name)));
  }
  er.set_container(container);
  std::string node = str_at(l->object, "spec.nodeName");
  if (node.empty())
    return failure_response(bad_request(fmt::format(
        "pod {} does not have a host assigned: it is not scheduled to a node yet", name)));
  // What the node last reported: a container known not to run is refused here.
  json rendered = render(t, *l);
  if (rendered.contains("status") && rendered["status"].is_object()) {
    for (const char* list : {"containerStatuses", "initContainerStatuses"}) {
      const json& st = rendered["status"];
      if (!st.contains(list) || !st[list].is_array()) continue;
      for (const auto& cs : st[list]) {
        if (!cs.is_object() || cs.value("name", "") != container) continue;
        if (!cs.contains("state") || !cs["state"].is_object() || !cs["state"].contains("running"))
          return failure_response(
              bad_request(fmt::format("container {} in pod {} is not running", container, name)));
      }
    }
  }
  if (!options.logs)
    return failure_response(
        {501, "NotImplemented", "this cloudcore serves no exec (no tunnel to the edge nodes)"});
  auto unavailable = [&](const common::Status& st) {
    int code = st.code() == Code::kUnavailable         ? 503
               : st.code() == Code::kResourceExhausted ? 429
               : st.code() == Code::kUnimplemented     ? 501
                                                       : 500;
    return failure_response(
        {code, code == 429 ? "TooManyRequests" : reason_for(static_cast<uint32_t>(code)),
         fmt::format("cannot {} into pod \"{}\": {}", what, name, st.message())});
  };

  if (!req.is_websocket_upgrade()) {
    // Older kubectl (before 1.30), or 1.30+ retrying after the WebSocket was refused. The answer
    // names what would stop a WebSocket session too.
    if (auto st = options.logs->exec_available(node); !st.ok()) return unavailable(st);
    std::string upgrade = req.header("Upgrade").value_or("");
    if (!upgrade.empty()) {
      return failure_response(bad_request(fmt::format(
          "{} needs kubectl 1.30 or newer (WebSocket streams, {}); this kubectl asked for {}, "
          "which cloudcore does not serve",
          what, kExecV5, upgrade)));
    }
    return failure_response(bad_request(fmt::format(
        "{} is a streaming request: upgrade to a WebSocket with subprotocol {} (kubectl 1.30 or "
        "newer does)",
        what, kExecV5)));
  }
  std::string offered = req.header("Sec-WebSocket-Protocol").value_or("");
  auto offers = [&](std::string_view proto) {
    size_t at = 0;
    while (at < offered.size()) {
      size_t comma = offered.find(',', at);
      std::string item =
          offered.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (item == proto) return true;
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
    return false;
  };
  std::string protocol = offers(kExecV5)   ? std::string(kExecV5)
                         : offers(kExecV4) ? std::string(kExecV4)
                                           : std::string();
  if (protocol.empty())
    return failure_response(bad_request(
        fmt::format("{} serves the WebSocket subprotocols {} and {}; the request offered \"{}\"",
                    what, kExecV5, kExecV4, offered)));

  auto session = std::make_shared<ExecSession>();
  session->v5 = protocol == kExecV5;
  session->command.assign(er.command().begin(), er.command().end());
  std::weak_ptr<ExecSession> weak = session;
  LogStreamer::Callbacks cbs;
  cbs.on_output = [weak](uint32_t channel, std::string data) {
    auto s = weak.lock();
    if (!s || (channel != 1 && channel != 2)) return;
    const size_t n = data.size();
    std::string message(1, static_cast<char>(channel));
    message += data;
    s->to_client(std::move(message));
    std::lock_guard lock(s->mu);
    if (s->upstream) s->upstream->consumed(n);  // queued for kubectl (bounded by the socket)
  };
  cbs.on_exit = [weak](int code) {
    auto s = weak.lock();
    if (!s) return;
    s->to_client(std::string(1, '\x03') + exec_status_json(code, s->command));
  };
  cbs.on_close = [weak, pod = ns + "/" + name](std::string error, uint32_t code) {
    auto s = weak.lock();
    if (!s) return;
    if (!error.empty()) {
      spdlog::info("api: exec in pod {} ended: {}", pod, error);
      s->to_client(std::string(1, '\x03') + failure_status_json(error, code ? code : 500));
    }
    s->close_client();
  };
  auto opened = options.logs->open_exec(node, er, std::move(cbs));
  if (!opened.ok()) return unavailable(opened.status());
  {
    std::lock_guard lock(session->mu);
    session->upstream = std::move(opened).value();
  }
  session->open_gauge = &stats.exec_open;
  ++stats.exec_open;
  req.upgrade_websocket(protocol, std::make_unique<ExecHandler>(session));
  return {};
}

// ---------------------------------------------------------------------------------------------
// Provinces.

json ApiServer::Impl::province(const std::string& name, const Permissions& p) {
  (void)p;
  int ready = 0, not_ready = 0, unknown = 0;
  int64_t last_change = 0;
  std::set<std::string> nodes;
  for (const auto& n : registry.nodes_in_province(name)) {
    nodes.insert(n);
    auto s = store.get(std::string(keys::kNodeStatus) + n);
    v1::StoredStatus st;
    if (!s.ok() || !*s || !st.ParseFromString((*s)->value)) {
      ++unknown;
      continue;
    }
    last_change = std::max(last_change, st.changed_at());
    json status = render_node_status(&st);
    std::string text = node_status_text({{"status", status}});
    if (text.starts_with("Ready")) {
      ++ready;
    } else if (text.starts_with("NotReady")) {
      ++not_ready;
    } else {
      ++unknown;
    }
  }
  // Pods by phase: a scan of the pods (fine at today's sizes; an index is the next step).
  std::map<std::string, int> phases;
  int pods = 0;
  ListOptions lo;
  lo.prefix = std::string(keys::kPods);
  auto list = store.list(lo);
  if (list.ok()) {
    for (const auto& kv : list->items) {
      v1::StoredObject so;
      if (!so.ParseFromString(kv.value) || !nodes.count(so.node_name())) continue;
      ++pods;
      std::string phase = "Pending";
      auto s = store.get(std::string(keys::kPodStatus) + kv.key.substr(keys::kPods.size()));
      v1::StoredStatus st;
      if (s.ok() && *s && st.ParseFromString((*s)->value)) {
        last_change = std::max(last_change, st.changed_at());
        json rendered = render_pod_status(json::object(), &st);
        phase = rendered.value("phase", "Pending");
      }
      ++phases[phase];
    }
  }
  json by_phase = json::object();
  for (const auto& [ph, n] : phases) by_phase[ph] = n;
  json out = {{"kind", "Province"},
              {"apiVersion", "gantry.io/v1"},
              {"metadata", {{"name", name}}},
              {"status",
               {{"nodes",
                 {{"total", nodes.size()},
                  {"ready", ready},
                  {"notReady", not_ready},
                  {"unknown", unknown}}},
                {"pods", {{"total", pods}, {"byPhase", by_phase}}}}}};
  if (last_change) out["status"]["lastChange"] = rfc3339(last_change / 1000);
  return out;
}

Response ApiServer::Impl::provinces(const Request& req, const std::string& name,
                                    const Identity& who, const Permissions& p) {
  if (req.method != "GET")
    return failure_response({405, "MethodNotAllowed", "provinces are read-only"});
  std::set<std::string> names;
  for (const auto& n : registry.node_names()) {
    auto info = registry.node(n);
    if (info && !info->province.empty()) names.insert(info->province);
  }
  if (!name.empty()) {
    if (!p.can_read(name)) {
      ++stats.forbidden;
      return failure_response(
          {403, "Forbidden",
           fmt::format("provinces \"{}\" is forbidden: user \"{}\" may see only its own province",
                       name, who.user)});
    }
    if (!names.count(name)) return failure_response(not_found("provinces", name));
    return json_response(200, province(name, p));
  }
  std::vector<json> items;
  for (const auto& n : names)
    if (p.can_read(n)) items.push_back(province(n, p));
  std::string rv = std::to_string(store.current_revision());
  if (wants_table(req))
    return json_response(
        200, render_table(province_kind().table_columns(), items, rv, clock.system_now()));
  return json_response(200, {{"kind", "ProvinceList"},
                             {"apiVersion", "gantry.io/v1"},
                             {"metadata", {{"resourceVersion", rv}}},
                             {"items", items}});
}

// ---------------------------------------------------------------------------------------------
// Discovery.

Response ApiServer::Impl::handle(Request& req) {
  ++stats.requests;
  const std::string& path = req.path;
  bool open_path = path == "/healthz" || path == "/readyz" || path == "/livez" ||
                   path == "/version" || path == "/metrics";
  auto open_response = [&]() -> Response {
    if (path == "/version")
      return json_response(200, {{"major", "1"},
                                 {"minor", "28"},
                                 {"gitVersion", kGitVersion},
                                 {"gitCommit", ""},
                                 {"gitTreeState", "clean"},
                                 {"buildDate", ""},
                                 {"goVersion", ""},
                                 {"compiler", "gcc"},
                                 {"platform", "linux/amd64"}});
    if (path == "/metrics") {
      if (!options.metrics)
        return failure_response({404, "NotFound", "this server exports no metrics"});
      return Response{
          200, {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}}, options.metrics()};
    }
    return Response::text(200, "ok");
  };
  if (open_path && options.anonymous_health) return open_response();
  if (auto ui = serve_ui(req)) return *ui;  // the dashboard's files; its data needs a token
  auto who = tokens.authenticate(req.header("Authorization").value_or(""));
  if (!who) {
    ++stats.unauthorized;
    return failure_response({401, "Unauthorized",
                             "Unauthorized: a valid bearer token is required (see the admin "
                             "kubeconfig gantryadm init writes)"});
  }
  Permissions p = permissions_of(*who);
  if (open_path) return open_response();
  if (auto r = aggregates->api->handle(req, *who, p)) return std::move(*r);
  if (req.method == "GET") {
    // Discovery, from the kinds. kubectl >= 1.26 asks for aggregated discovery first.
    bool core_root = path == "/api" || path == "/api/";
    if (core_root || path == "/apis" || path == "/apis/") {
      if (auto v = aggregated_discovery_version(req.header("Accept").value_or(""))) {
        auto r = Response::json(200, aggregated_discovery(kinds, core_root, *v).dump());
        for (auto& [k, value] : r.headers)
          if (k == "Content-Type") value = aggregated_discovery_content_type(*v);
        r.headers.emplace_back("Vary", "Accept");
        return r;
      }
      auto r = json_response(200, core_root
                                      ? api_versions(req.header("Host").value_or("127.0.0.1:10443"))
                                      : api_group_list(kinds));
      r.headers.emplace_back("Vary", "Accept");
      return r;
    }
    if (path == "/openapi/v2") {
      auto accept = req.header("Accept").value_or("");
      if (accept.find("protobuf") != std::string::npos) {
        Response r;
        r.status = 200;
        r.body = openapi_protobuf;
        r.headers.emplace_back("Content-Type",
                               "application/com.github.proto-openapi.spec.v2.v1.0+protobuf");
        return r;
      }
      return Response::json(200, openapi_json);
    }
  }
  constexpr std::string_view kProvinces = "/apis/gantry.io/v1/provinces";
  if (path.starts_with(kProvinces)) {
    std::string rest = path.substr(kProvinces.size());
    if (!rest.empty() && rest[0] != '/')
      return failure_response(
          {404, "NotFound", "the server could not find the requested resource"});
    std::string name = rest.empty() ? "" : rest.substr(1);
    if (name.find('/') != std::string::npos)
      return failure_response(
          {404, "NotFound", "the server could not find the requested resource"});
    return provinces(req, name, *who, p);
  }
  if (auto review = serve_review(authorizer, *who, req.method, path, req.body))
    return json_response(review->code, review->body);
  if (path.starts_with("/api/") || path.starts_with("/apis/")) return handle_resource(req, *who, p);
  return failure_response(
      {404, "NotFound",
       fmt::format("the server could not find the requested resource ({} {})", req.method, path)});
}

// /api/v1/... and /apis/GROUP/VERSION/...: the kind from the registry, then
// [namespaces/NS/]PLURAL[/NAME[/SUBRESOURCE]].
Response ApiServer::Impl::handle_resource(Request& req, const Identity& who, const Permissions& p) {
  std::vector<std::string> seg;
  std::string_view rest = std::string_view(req.path);
  rest.remove_prefix(1);
  while (!rest.empty()) {
    auto slash = rest.find('/');
    seg.emplace_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  while (!seg.empty() && seg.back().empty()) seg.pop_back();
  auto not_served = [&] {
    return failure_response({404, "NotFound",
                             fmt::format("the server could not find the requested resource ({} {})",
                                         req.method, req.path)});
  };
  if (seg.size() < 2) return not_served();
  std::string group, version;
  size_t at = 0;
  if (seg[0] == "api") {
    version = seg[1];
    at = 2;
  } else {
    group = seg[1];
    if (seg.size() == 2) {
      auto g = api_group(kinds, group);
      if (req.method != "GET" || !g) return not_served();
      return json_response(200, *g);
    }
    version = seg[2];
    at = 3;
  }
  if (seg.size() == at) {
    auto list = api_resource_list(kinds, group, version);
    if (req.method != "GET" || !list) return not_served();
    return json_response(200, *list);
  }
  seg.erase(seg.begin(), seg.begin() + static_cast<std::ptrdiff_t>(at));
  std::string group_version = group.empty() ? version : group + "/" + version;
  std::string ns, resource, name, sub;
  if (seg.size() >= 3 && seg[0] == "namespaces") {
    ns = seg[1];
    resource = seg[2];
    if (seg.size() > 3) name = seg[3];
    if (seg.size() > 4) sub = seg[4];
    if (seg.size() > 5)
      return failure_response(
          {404, "NotFound", "the server could not find the requested resource"});
  } else if (!seg.empty()) {
    resource = seg[0];
    if (seg.size() > 1) name = seg[1];
    if (seg.size() > 2) sub = seg[2];
    if (seg.size() > 3)
      return failure_response(
          {404, "NotFound", "the server could not find the requested resource"});
  }
  const Kind* t = kinds.find(group, version, resource);
  if (!t || t->prefix.empty())
    return failure_response(
        {404, "NotFound",
         fmt::format("the server could not find the requested resource (no resource \"{}\" in {})",
                     resource, group_version)});
  if (!ns.empty() && !t->namespaced)
    return failure_response({404, "NotFound", fmt::format("{} are not namespaced", t->plural)});
  if (t->namespaced && !name.empty() && ns.empty())
    return failure_response({404, "NotFound", "the server could not find the requested resource"});
  // The verb, as Kubernetes names it, from the method and whether a name was given.
  Verbs verb = 0;
  if (req.method == "GET") {
    auto w = common::parse_bool_param("watch", query(req, "watch"));
    if (!w.ok()) return failure_response(bad_param(w.status()));
    verb = !name.empty() ? kGet : w->value_or(false) ? kWatch : kList;
  } else if (req.method == "POST") {
    verb = kCreate;
  } else if (req.method == "PUT") {
    verb = kUpdate;
  } else if (req.method == "PATCH") {
    verb = kPatch;
  } else if (req.method == "DELETE") {
    verb = name.empty() ? kDeleteCollection : kDelete;
  }
  auto not_allowed = [&](const std::string& what) {
    return failure_response(
        {405, "MethodNotAllowed", fmt::format("{} is not supported on {}", req.method, what)});
  };
  if (!sub.empty()) {
    const Subresource* s = t->subresource(sub);
    if (!s || name.empty())
      return failure_response(
          {404, "NotFound",
           fmt::format("the server could not find the requested resource ({}/{})", t->plural,
                       sub)});
    if (!(s->verbs & verb)) return not_allowed(t->plural + "/" + sub);
    if (s->name == "log") return logs(req, *t, ns, name, who, p);
    if (s->name == "exec" || s->name == "attach")
      return exec(req, *t, ns, name, who, p, s->name == "attach");
    if (auto f = check_kind(who, p, *t, ns, verb)) return failure_response(*f);
    if (s->name == "eviction") return evict(req, *t, ns, name, who, p);
    if (s->name == "scale") return scale(req, *t, ns, name, who, p);
    if (s->name == "status" && verb != kGet) return write_status(req, *t, ns, name, who, p);
    if (s->name != "status")
      return failure_response(
          {501, "NotImplemented", fmt::format("{}/{} is not served yet", t->plural, sub)});
  } else if (!t->allows(verb)) {
    return not_allowed(name.empty() ? "a list of " + t->plural : t->plural);
  }
  if (auto f = check_kind(who, p, *t, ns, verb)) return failure_response(*f);

  if (verb == kList || verb == kWatch || verb == kDeleteCollection) {
    auto filter = parse_filter(req, *t, p);
    if (failed(filter)) return failure_response(std::get<Failure>(filter));
    if (verb == kWatch) return watch(req, *t, ns, std::move(std::get<Filter>(filter)));
    if (verb == kDeleteCollection)
      return delete_collection(req, *t, ns, std::get<Filter>(filter), who, p);
    return list(req, *t, ns, std::get<Filter>(filter));
  }
  if (verb == kCreate) {
    if (!name.empty()) return not_allowed(t->plural + "/" + name);
    if (t->namespaced && ns.empty())
      return failure_response(bad_request(
          fmt::format("{} are namespaced: POST to {}/namespaces/NS/{}", t->plural,
                      group.empty() ? "/api/v1" : "/apis/" + group_version, t->plural)));
    return create(req, *t, ns, who, p);
  }
  if (verb == kGet) {
    // resourceVersion on a get: unset/"0"/N not newer than the store all read the current object.
    std::string rv_text = query(req, "resourceVersion").value_or("");
    auto rv = parse_revision(rv_text);
    if (!rv)
      return failure_response(bad_request(
          fmt::format("resourceVersion: \"{}\" is not a valid resource version", rv_text)));
    if (Revision current = store.current_revision(); *rv > current)
      return failure_response(too_large_resource_version(*rv, current));
    auto cur = load(*t, ns, name);
    if (failed(cur)) return failure_response(std::get<Failure>(cur));
    auto& l = std::get<std::optional<Loaded>>(cur);
    if (!l) return failure_response(not_found(t->plural, name));
    json obj = render(*t, *l);
    if (auto f = check_object(who, p, *t, obj, false)) return failure_response(*f);
    if (wants_table(req))
      return json_response(
          200, render_table(t->table_columns(), {obj}, std::to_string(l->resource_version),
                            clock.system_now()));
    return json_response(200, obj);
  }
  if (verb == kUpdate) return update(req, *t, ns, name, who, p);
  if (verb == kPatch) return patch(req, *t, ns, name, who, p);
  if (verb == kDelete) return remove(req, *t, ns, name, who, p);
  return not_allowed(t->plural);
}

// ---------------------------------------------------------------------------------------------

common::Result<std::unique_ptr<ApiServer>> ApiServer::start(
    common::EventLoop& loop, std::shared_ptr<common::TlsContext> tls, Store& store,
    Registry& registry, common::Clock& clock, TokenAuthenticator tokens, ApiServerOptions options) {
  auto impl = std::make_shared<Impl>(loop, store, registry, clock, std::move(tokens), options);
  // The namespaces every cluster has.
  for (const char* ns : {"default", "kube-system"}) {
    std::string key = std::string(keys::kNamespaces) + ns;
    auto existing = store.get(key);
    if (!existing.ok()) return existing.status();
    if (*existing) continue;
    json obj = {{"kind", "Namespace"},
                {"apiVersion", "v1"},
                {"metadata",
                 {{"name", ns},
                  {"uid", common::new_uid()},
                  {"creationTimestamp", rfc3339(impl->now_seconds())}}},
                {"spec", json::object()}};
    v1::StoredObject stored;
    stored.set_json(obj.dump());
    auto put = store.txn({Op::put(key, stored.SerializeAsString(), 0)});
    if (!put.ok() && put.status().code() != Code::kFailedPrecondition) return put.status();
  }
  auto aggregates = Aggregates::start(store);
  if (!aggregates.ok()) return aggregates.status().with_context("API server");
  impl->aggregates = std::move(aggregates).value();
  common::Router router;
  std::weak_ptr<Impl> weak = impl;
  router.set_fallback([weak](Request& req) {
    auto impl = weak.lock();
    if (!impl) return Response::text(503, "stopping");
    auto started = std::chrono::steady_clock::now();
    Response response = impl->handle(req);
    if (impl->options.observe)
      impl->options.observe(req, response, std::chrono::steady_clock::now() - started);
    return response;
  });
  common::HttpServerOptions http_options;
  http_options.address = options.address;
  http_options.port = options.port;
  http_options.max_body_bytes = options.max_body_bytes;
  auto http = common::HttpServer::start(loop, std::move(tls), http_options, std::move(router));
  if (!http.ok()) return http.status().with_context("API server");
  impl->http = std::move(http).value();
  return std::unique_ptr<ApiServer>(new ApiServer(impl));
}

ApiServer::~ApiServer() {
  stop();
}

uint16_t ApiServer::port() const {
  return impl_->http->port();
}
const ApiServerStats& ApiServer::stats() const {
  return impl_->stats;
}

void ApiServer::stop() {
  std::set<std::shared_ptr<Impl::Watch>> watches;
  {
    std::lock_guard lock(impl_->watches_mu);
    impl_->stopped = true;
    watches.swap(impl_->watches);
  }
  for (const auto& w : watches) {
    std::unique_ptr<WatchHandle> handle;
    if (!w->end(handle)) continue;
    handle.reset();
    --impl_->stats.watches_open;
  }
  std::set<std::shared_ptr<Impl::LogSession>> logs;
  {
    std::lock_guard lock(impl_->watches_mu);
    logs = impl_->log_sessions;
  }
  for (const auto& s : logs) impl_->end_log(s);
  if (impl_->aggregates) impl_->aggregates->api->stop();
  if (impl_->http) impl_->http->stop();
}

}  // namespace gantry::cloud::api
