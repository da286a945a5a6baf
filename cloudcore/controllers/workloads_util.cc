#include <fmt/format.h>

#include <cstdio>
#include <ctime>
#include <random>

#include "cloudcore/controllers/workloads_internal.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

std::vector<OwnerRef> owners_of(const json& obj) {
  std::vector<OwnerRef> out;
  if (!obj.is_object() || !obj.contains("metadata")) return out;
  const json& meta = obj["metadata"];
  if (!meta.is_object() || !meta.contains("ownerReferences")) return out;
  const json& refs = meta["ownerReferences"];
  if (!refs.is_array()) return out;
  for (const auto& r : refs) {
    if (!r.is_object()) continue;
    OwnerRef o;
    o.api_version = r.value("apiVersion", "");
    o.kind = r.value("kind", "");
    o.name = r.value("name", "");
    o.uid = r.value("uid", "");
    o.controller = r.contains("controller") && r["controller"].is_boolean() && r["controller"];
    out.push_back(std::move(o));
  }
  return out;
}

const OwnerRef* controller_of(const std::vector<OwnerRef>& owners) {
  for (const auto& o : owners)
    if (o.controller) return &o;
  return nullptr;
}

json owner_ref_json(const std::string& kind, const std::string& name, const std::string& uid) {
  return {{"apiVersion", "apps/v1"},
          {"kind", kind},
          {"name", name},
          {"uid", uid},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

bool selector_matches(const json& selector, const std::map<std::string, std::string>& labels) {
  if (!selector.is_object()) return false;
  bool any = false;
  if (selector.contains("matchLabels") && selector["matchLabels"].is_object()) {
    for (auto it = selector["matchLabels"].begin(); it != selector["matchLabels"].end(); ++it) {
      any = true;
      auto l = labels.find(it.key());
      if (l == labels.end() || !it->is_string() || l->second != it->get<std::string>())
        return false;
    }
  }
  if (selector.contains("matchExpressions") && selector["matchExpressions"].is_array()) {
    for (const auto& e : selector["matchExpressions"]) {
      if (!e.is_object()) return false;
      any = true;
      std::string key = e.value("key", "");
      std::string op = e.value("operator", "");
      std::set<std::string> values;
      if (e.contains("values") && e["values"].is_array())
        for (const auto& v : e["values"])
          if (v.is_string()) values.insert(v.get<std::string>());
      auto l = labels.find(key);
      if (op == "In") {
        if (l == labels.end() || !values.count(l->second)) return false;
      } else if (op == "NotIn") {
        if (l != labels.end() && values.count(l->second)) return false;
      } else if (op == "Exists") {
        if (l == labels.end()) return false;
      } else if (op == "DoesNotExist") {
        if (l != labels.end()) return false;
      } else {
        return false;
      }
    }
  }
  return any;
}

std::map<std::string, std::string> string_map(const json& obj) {
  std::map<std::string, std::string> out;
  if (!obj.is_object()) return out;
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (it->is_string()) out[it.key()] = it->get<std::string>();
  return out;
}

std::string rfc3339_ms(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<int64_t> parse_rfc3339_ms(const std::string& text) {
  std::tm tm{};
  int y, mo, d, h, mi, s;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &s) != 6)
    return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

namespace {
std::mt19937_64& rng() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  return gen;
}
}  // namespace

std::string random_suffix(size_t n) {
  // Kubernetes' generateName alphabet: no vowels (no words), no 0/1/3 (look like letters).
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string out;
  for (size_t i = 0; i < n; ++i) out += kAlphabet[pick(rng())];
  return out;
}

std::string random_uid() {
  std::uniform_int_distribution<uint64_t> d;
  uint64_t a = d(rng()), b = d(rng());
  return fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                     ((b >> 48) & 0x3fff) | 0x8000, b & 0xffffffffffffULL);
}

std::optional<int64_t> replace_unreachable_after(const json& obj) {
  std::string v =
      common::json_string_at(obj, {"metadata", "annotations", kReplaceUnreachableAfter});
  if (v.empty()) return std::nullopt;
  if (v.back() == 's') v.pop_back();
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (end == v.c_str() || *end != '\0' || n < 0) return std::nullopt;
  return n;
}

const json* find_condition(const json& status, const std::string& type) {
  if (!status.is_object() || !status.contains("conditions") || !status["conditions"].is_array())
    return nullptr;
  for (const auto& c : status["conditions"])
    if (c.is_object() && c.value("type", "") == type) return &c;
  return nullptr;
}

void set_condition(json& status, const std::string& type, const std::string& value,
                   const std::string& reason, const std::string& message, int64_t now_ms) {
  if (!status.contains("conditions") || !status["conditions"].is_array())
    status["conditions"] = json::array();
  json& list = status["conditions"];
  std::string now = rfc3339_ms(now_ms);
  for (auto& c : list) {
    if (!c.is_object() || c.value("type", "") != type) continue;
    if (c.value("status", "") != value) c["lastTransitionTime"] = now;
    bool changed = c.value("status", "") != value || c.value("reason", "") != reason ||
                   c.value("message", "") != message;
    c["status"] = value;
    c["reason"] = reason;
    c["message"] = message;
    if (changed || !c.contains("lastUpdateTime")) c["lastUpdateTime"] = now;
    return;
  }
  list.push_back({{"type", type},
                  {"status", value},
                  {"reason", reason},
                  {"message", message},
                  {"lastTransitionTime", now},
                  {"lastUpdateTime", now}});
}

std::optional<std::string> stored_json(const std::string& value) {
  v1::StoredObject so;
  if (!so.ParseFromString(value)) return std::nullopt;
  return std::move(*so.mutable_json());
}

}  // namespace gantry::cloud::controllers
