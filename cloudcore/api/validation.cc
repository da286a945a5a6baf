#include "cloudcore/api/validation.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "cloudcore/registry/objects.h"  // parse_quantity
#include "common/base/parse.h"
#include "common/base/uid.h"

namespace gantry::cloud::api {
namespace {

using nlohmann::json;

// ----- messages (k8s.io/apimachinery/pkg/util/validation wording) ---------------------------

constexpr const char* kDns1123LabelMsg =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
constexpr const char* kDns1123SubdomainMsg =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
constexpr const char* kQualifiedNameMsg =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
constexpr const char* kLabelValueMsg =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
constexpr const char* kConfigKeyMsg =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
constexpr const char* kEnvVarMsg =
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
    "or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
constexpr const char* kQuantityMsg =
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

bool lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool alnum(char c) {
  return lower_alnum(c) || (c >= 'A' && c <= 'Z');
}
bool digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_label(std::string_view s) {
  if (s.empty() || !lower_alnum(s.front()) || !lower_alnum(s.back())) return false;
  for (char c : s)
    if (!lower_alnum(c) && c != '-') return false;
  return true;
}

bool is_subdomain(std::string_view s) {
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!is_label(s.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool is_qualified_part(std::string_view s) {
  if (s.empty() || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s)
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

std::vector<std::string> chdir_prefix_errors(std::string_view value) {
  if (value == ".") return {"must not be '.'"};
  if (value == "..") return {"must not be '..'"};
  if (value.starts_with("..")) return {"must not start with '..'"};
  return {};
}

// ----- building errors ----------------------------------------------------------------------

class Errors {
 public:
  void add(FieldErrorType type, std::string field, json value, std::string detail = "") {
    list_.push_back({type, std::move(field), std::move(value), std::move(detail)});
  }
  void required(std::string field, std::string detail = "") {
    add(FieldErrorType::kRequired, std::move(field), nullptr, std::move(detail));
  }
  void invalid(std::string field, json value, std::string detail) {
    add(FieldErrorType::kInvalid, std::move(field), std::move(value), std::move(detail));
  }
  void each(const std::string& field, const json& value, const std::vector<std::string>& msgs) {
    for (const auto& m : msgs) invalid(field, value, m);
  }
  void not_supported(std::string field, json value, std::initializer_list<const char*> options) {
    std::string detail = "supported values: ";
    bool first = true;
    for (const char* o : options) {
      detail += fmt::format("{}\"{}\"", first ? "" : ", ", o);
      first = false;
    }
    add(FieldErrorType::kNotSupported, std::move(field), std::move(value), std::move(detail));
  }
  // The value at obj[key] must be of `type` when present; false (and an error) if not.
  bool type_is(const json& obj, const std::string& field, json::value_t type, const char* name) {
    if (obj.type() == type) return true;
    if (type == json::value_t::number_integer && obj.is_number_integer()) return true;
    add(FieldErrorType::kTypeInvalid, field, obj, fmt::format("must be of type {}", name));
    return false;
  }
  FieldErrors take() { return std::move(list_); }
  bool empty() const { return list_.empty(); }

 private:
  FieldErrors list_;
};

std::string key_path(const std::string& base, const std::string& key) {
  return fmt::format("{}[{}]", base, key);
}
std::string index_path(const std::string& base, size_t i) {
  return fmt::format("{}[{}]", base, i);
}

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string string_member(const json& obj, const char* key) {
  const json* v = member(obj, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// A map of strings at `path` (null/absent is fine). Returns nullptr if absent or of a wrong type.
const json* string_map(Errors& errs, const json& obj, const char* key, const std::string& path) {
  const json* m = member(obj, key);
  if (!m) return nullptr;
  if (!errs.type_is(*m, path, json::value_t::object, "object")) return nullptr;
  bool ok = true;
  for (auto it = m->begin(); it != m->end(); ++it)
    if (!it->is_string()) {
      errs.add(FieldErrorType::kTypeInvalid, key_path(path, it.key()), *it,
               "must be of type string");
      ok = false;
    }
  return ok ? m : nullptr;
}

// An array at `path` (absent: nullptr; a wrong type: an error and nullptr).
const json* array_member(Errors& errs, const json& obj, const char* key, const std::string& path) {
  const json* a = member(obj, key);
  if (!a) return nullptr;
  if (!errs.type_is(*a, path, json::value_t::array, "array")) return nullptr;
  return a;
}

// An integer member within [min, max]; nullopt when absent or invalid (errors added).
std::optional<int64_t> int_member(Errors& errs, const json& obj, const char* key,
                                  const std::string& path) {
  const json* v = member(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) {
    errs.add(FieldErrorType::kTypeInvalid, path, *v, "must be of type integer");
    return std::nullopt;
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    errs.invalid(path, *v, "must be a 64-bit integer");
    return std::nullopt;
  }
  return v->get<int64_t>();
}

// ----- metadata -----------------------------------------------------------------------------

enum class NameRule { kSubdomain, kLabel };

void validate_labels(Errors& errs, const json* labels, const std::string& path) {
  if (!labels) return;
  for (auto it = labels->begin(); it != labels->end(); ++it) {
    errs.each(path, it.key(), qualified_name_errors(it.key()));
    errs.each(path, *it, label_value_errors(it->get<std::string>()));
  }
}

void validate_metadata(Errors& errs, const json& obj, NameRule rule, bool namespaced,
                       const json* old) {
  const json* meta = member(obj, "metadata");
  if (!meta) {
    errs.required("metadata");
    return;
  }
  if (!errs.type_is(*meta, "metadata", json::value_t::object, "object")) return;
  const json* name = member(*meta, "name");
  if (!name || (name->is_string() && name->get_ref<const std::string&>().empty())) {
    errs.required("metadata.name", "name or generateName is required");
  } else if (errs.type_is(*name, "metadata.name", json::value_t::string, "string")) {
    const std::string& n = name->get_ref<const std::string&>();
    errs.each("metadata.name", n,
              rule == NameRule::kLabel ? dns1123_label_errors(n) : dns1123_subdomain_errors(n));
  }
  if (const json* gen = member(*meta, "generateName");
      gen && errs.type_is(*gen, "metadata.generateName", json::value_t::string, "string")) {
    // A prefix: valid once the random suffix is appended, so a trailing '-' is fine.
    std::string prefix = gen->get<std::string>();
    while (!prefix.empty() && prefix.back() == '-') prefix.pop_back();
    if (!prefix.empty())
      errs.each("metadata.generateName", *gen,
                rule == NameRule::kLabel ? dns1123_label_errors(prefix)
                                         : dns1123_subdomain_errors(prefix));
  }
  if (namespaced) {
    std::string ns = string_member(*meta, "namespace");
    if (ns.empty())
      errs.required("metadata.namespace");
    else
      errs.each("metadata.namespace", ns, dns1123_label_errors(ns));
  } else if (member(*meta, "namespace") && !string_member(*meta, "namespace").empty()) {
    errs.add(FieldErrorType::kForbidden, "metadata.namespace", nullptr, "not allowed on this type");
  }
  validate_labels(errs, string_map(errs, *meta, "labels", "metadata.labels"), "metadata.labels");
  if (const json* ann = string_map(errs, *meta, "annotations", "metadata.annotations")) {
    size_t total = 0;
    for (auto it = ann->begin(); it != ann->end(); ++it) {
      std::string lower = it.key();
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      errs.each("metadata.annotations", it.key(), qualified_name_errors(lower));
      total += it.key().size() + it->get_ref<const std::string&>().size();
    }
    if (total > kMaxAnnotationsSize)
      errs.add(FieldErrorType::kTooLong, "metadata.annotations", nullptr,
               fmt::format("must have at most {} bytes", kMaxAnnotationsSize));
  }
  if (const json* fin = array_member(errs, *meta, "finalizers", "metadata.finalizers")) {
    for (size_t i = 0; i < fin->size(); ++i) {
      const json& f = (*fin)[i];
      std::string path = index_path("metadata.finalizers", i);
      if (errs.type_is(f, path, json::value_t::string, "string"))
        errs.each(path, f, qualified_name_errors(f.get<std::string>()));
    }
  }
  if (old && old->is_object()) {
    const json* old_meta = member(*old, "metadata");
    if (old_meta) {
      for (const char* immutable : {"name", "namespace"}) {
        std::string before = string_member(*old_meta, immutable);
        std::string after = string_member(*meta, immutable);
        if (before != after)
          errs.invalid(fmt::format("metadata.{}", immutable), after, "field is immutable");
      }
    }
  }
}

// ----- pods ---------------------------------------------------------------------------------

struct PodNames {
  std::set<std::string> volumes;
  std::set<std::string> containers;
  std::set<std::string> port_names;
};

void validate_resources(Errors& errs, const json& c, const std::string& path) {
  const json* res = member(c, "resources");
  if (!res || !errs.type_is(*res, path + ".resources", json::value_t::object, "object")) return;
  std::map<std::string, double> limits;
  for (const char* part : {"limits", "requests"}) {
    const json* m = member(*res, part);
    std::string base = fmt::format("{}.resources.{}", path, part);
    if (!m || !errs.type_is(*m, base, json::value_t::object, "object")) continue;
    for (auto it = m->begin(); it != m->end(); ++it) {
      std::string field = key_path(base, it.key());
      std::string text = it->is_string()   ? it->get<std::string>()
                         : it->is_number() ? it->dump()
                                           : "";
      if (!it->is_string() && !it->is_number()) {
        errs.add(FieldErrorType::kTypeInvalid, field, *it, "must be a quantity (string or number)");
        continue;
      }
      if (!qualified_name_errors(it.key()).empty()) {
        errs.invalid(field, it.key(), "must be a standard resource type or fully qualified");
        continue;
      }
      auto q = parse_quantity(text);
      if (!q) {
        errs.invalid(field, text, kQuantityMsg);
        continue;
      }
      if (*q < 0) {
        errs.invalid(field, text, "must be greater than or equal to 0");
        continue;
      }
      if (std::string_view(part) == "limits") {
        limits[it.key()] = *q;
      } else if (auto l = limits.find(it.key()); l != limits.end() && *q > l->second) {
        const json& limit = (*res)["limits"][it.key()];
        errs.invalid(field, text,
                     fmt::format("must be less than or equal to {} limit of {}", it.key(),
                                 limit.is_string() ? limit.get<std::string>() : limit.dump()));
      }
    }
  }
}

void validate_container(Errors& errs, const json& c, const std::string& path, PodNames& names,
                        bool init) {
  if (!errs.type_is(c, path, json::value_t::object, "object")) return;
  const json* name = member(c, "name");
  if (!name || (name->is_string() && name->get_ref<const std::string&>().empty())) {
    errs.required(path + ".name");
  } else if (errs.type_is(*name, path + ".name", json::value_t::string, "string")) {
    const std::string& n = name->get_ref<const std::string&>();
    errs.each(path + ".name", n, dns1123_label_errors(n));
    if (!names.containers.insert(n).second) errs.add(FieldErrorType::kDuplicate, path + ".name", n);
  }
  const json* image = member(c, "image");
  if (!image || (image->is_string() && image->get_ref<const std::string&>().empty())) {
    errs.required(path + ".image");
  } else if (errs.type_is(*image, path + ".image", json::value_t::string, "string")) {
    const std::string& img = image->get_ref<const std::string&>();
    if (std::isspace(static_cast<unsigned char>(img.front())) ||
        std::isspace(static_cast<unsigned char>(img.back())))
      errs.invalid(path + ".image", img, "must not have leading or trailing whitespace");
  }
  if (const json* p = member(c, "imagePullPolicy")) {
    std::string v = p->is_string() ? p->get<std::string>() : p->dump();
    if (v != "Always" && v != "IfNotPresent" && v != "Never")
      errs.not_supported(path + ".imagePullPolicy", *p, {"Always", "IfNotPresent", "Never"});
  }
  if (const json* ports = array_member(errs, c, "ports", path + ".ports")) {
    for (size_t i = 0; i < ports->size(); ++i) {
      const json& port = (*ports)[i];
      std::string pp = index_path(path + ".ports", i);
      if (!errs.type_is(port, pp, json::value_t::object, "object")) continue;
      if (const json* cp = member(port, "containerPort"); !cp) {
        errs.required(pp + ".containerPort");
      } else if (auto v = int_member(errs, port, "containerPort", pp + ".containerPort");
                 v && (*v < 1 || *v > 65535)) {
        errs.invalid(pp + ".containerPort", *v, "must be between 1 and 65535, inclusive");
      }
      if (auto v = int_member(errs, port, "hostPort", pp + ".hostPort");
          v && *v != 0 && (*v < 1 || *v > 65535))
        errs.invalid(pp + ".hostPort", *v, "must be between 1 and 65535, inclusive");
      if (const json* pn = member(port, "name");
          pn && errs.type_is(*pn, pp + ".name", json::value_t::string, "string") &&
          !pn->get_ref<const std::string&>().empty()) {
        const std::string& n = pn->get_ref<const std::string&>();
        errs.each(pp + ".name", n, port_name_errors(n));
        if (!names.port_names.insert(n).second)
          errs.add(FieldErrorType::kDuplicate, pp + ".name", n);
      }
      if (const json* proto = member(port, "protocol")) {
        std::string v = proto->is_string() ? proto->get<std::string>() : proto->dump();
        if (v != "TCP" && v != "UDP" && v != "SCTP")
          errs.not_supported(pp + ".protocol", *proto, {"SCTP", "TCP", "UDP"});
      }
    }
  }
  if (const json* env = array_member(errs, c, "env", path + ".env")) {
    for (size_t i = 0; i < env->size(); ++i) {
      const json& e = (*env)[i];
      std::string ep = index_path(path + ".env", i);
      if (!errs.type_is(e, ep, json::value_t::object, "object")) continue;
      const json* en = member(e, "name");
      if (!en || (en->is_string() && en->get_ref<const std::string&>().empty())) {
        errs.required(ep + ".name");
      } else if (errs.type_is(*en, ep + ".name", json::value_t::string, "string")) {
        errs.each(ep + ".name", *en, env_var_name_errors(en->get<std::string>()));
      }
      if (const json* v = member(e, "value"))
        errs.type_is(*v, ep + ".value", json::value_t::string, "string");
      if (member(e, "valueFrom") && !string_member(e, "value").empty())
        errs.invalid(ep + ".valueFrom", "", "may not be specified when `value` is not empty");
    }
  }
  if (const json* mounts = array_member(errs, c, "volumeMounts", path + ".volumeMounts")) {
    std::set<std::string> paths;
    for (size_t i = 0; i < mounts->size(); ++i) {
      const json& m = (*mounts)[i];
      std::string mp = index_path(path + ".volumeMounts", i);
      if (!errs.type_is(m, mp, json::value_t::object, "object")) continue;
      std::string vname = string_member(m, "name");
      if (vname.empty())
        errs.required(mp + ".name");
      else if (!names.volumes.count(vname))
        errs.add(FieldErrorType::kNotFound, mp + ".name", vname);
      std::string mount_path = string_member(m, "mountPath");
      if (mount_path.empty())
        errs.required(mp + ".mountPath");
      else if (!paths.insert(mount_path).second)
        errs.invalid(mp + ".mountPath", mount_path, "must be unique");
      std::string sub = string_member(m, "subPath");
      if (!sub.empty()) {
        if (sub.front() == '/')
          errs.invalid(mp + ".subPath", sub, "must be a relative path");
        else if (sub == ".." || sub.starts_with("../") || sub.ends_with("/..") ||
                 sub.find("/../") != std::string::npos)
          errs.invalid(mp + ".subPath", sub, "must not contain '..'");
      }
    }
  }
  validate_resources(errs, c, path);
}

// configMap/secret volume items: keys and relative paths that stay inside the volume.
void validate_key_to_paths(Errors& errs, const json& source, const std::string& path) {
  if (auto mode = int_member(errs, source, "defaultMode", path + ".defaultMode");
      mode && (*mode < 0 || *mode > 0777))
    errs.invalid(path + ".defaultMode", *mode,
                 "must be a number between 0 and 0777 (octal), both inclusive");
  const json* items = array_member(errs, source, "items", path + ".items");
  if (!items) return;
  for (size_t i = 0; i < items->size(); ++i) {
    const json& item = (*items)[i];
    std::string ip = index_path(path + ".items", i);
    if (!errs.type_is(item, ip, json::value_t::object, "object")) continue;
    std::string key = string_member(item, "key");
    if (key.empty()) errs.required(ip + ".key");
    std::string p = string_member(item, "path");
    if (p.empty()) {
      errs.required(ip + ".path");
    } else if (p.front() == '/') {
      errs.invalid(ip + ".path", p, "must be a relative path");
    } else {
      size_t start = 0;
      while (start <= p.size()) {
        size_t slash = p.find('/', start);
        std::string_view part = std::string_view(p).substr(
            start, slash == std::string::npos ? std::string::npos : slash - start);
        if (part == "..") {
          errs.invalid(ip + ".path", p, "must not contain '..'");
          break;
        }
        if (slash == std::string::npos) break;
        start = slash + 1;
      }
    }
    if (auto mode = int_member(errs, item, "mode", ip + ".mode");
        mode && (*mode < 0 || *mode > 0777))
      errs.invalid(ip + ".mode", *mode,
                   "must be a number between 0 and 0777 (octal), both inclusive");
  }
}

void validate_volumes(Errors& errs, const json& spec, PodNames& names) {
  const json* volumes = array_member(errs, spec, "volumes", "spec.volumes");
  if (!volumes) return;
  for (size_t i = 0; i < volumes->size(); ++i) {
    const json& v = (*volumes)[i];
    std::string vp = index_path("spec.volumes", i);
    if (!errs.type_is(v, vp, json::value_t::object, "object")) continue;
    const json* name = member(v, "name");
    if (!name || (name->is_string() && name->get_ref<const std::string&>().empty())) {
      errs.required(vp + ".name");
    } else if (errs.type_is(*name, vp + ".name", json::value_t::string, "string")) {
      const std::string& n = name->get_ref<const std::string&>();
      errs.each(vp + ".name", n, dns1123_label_errors(n));
      if (!names.volumes.insert(n).second) errs.add(FieldErrorType::kDuplicate, vp + ".name", n);
    }
    int sources = 0;
    for (auto it = v.begin(); it != v.end(); ++it)
      if (it.key() != "name" && !it->is_null()) ++sources;
    if (sources == 0)
      errs.required(vp, "must specify a volume type");
    else if (sources > 1)
      errs.add(FieldErrorType::kForbidden, vp, nullptr, "may not specify more than 1 volume type");
    if (const json* cm = member(v, "configMap");
        cm && errs.type_is(*cm, vp + ".configMap", json::value_t::object, "object")) {
      if (string_member(*cm, "name").empty()) errs.required(vp + ".configMap.name");
      validate_key_to_paths(errs, *cm, vp + ".configMap");
    }
    if (const json* s = member(v, "secret");
        s && errs.type_is(*s, vp + ".secret", json::value_t::object, "object")) {
      if (string_member(*s, "secretName").empty()) errs.required(vp + ".secret.secretName");
      validate_key_to_paths(errs, *s, vp + ".secret");
    }
    if (const json* hp = member(v, "hostPath");
        hp && errs.type_is(*hp, vp + ".hostPath", json::value_t::object, "object")) {
      std::string p = string_member(*hp, "path");
      if (p.empty()) errs.required(vp + ".hostPath.path");
    }
  }
}

void validate_pod_spec(Errors& errs, const json& obj) {
  const json* spec = member(obj, "spec");
  if (!spec) {
    errs.required("spec");
    return;
  }
  if (!errs.type_is(*spec, "spec", json::value_t::object, "object")) return;
  PodNames names;
  validate_volumes(errs, *spec, names);
  const json* containers = array_member(errs, *spec, "containers", "spec.containers");
  if (!containers || containers->empty()) {
    if (!member(*spec, "containers") || (containers && containers->empty()))
      errs.required("spec.containers");
  }
  if (const json* init = array_member(errs, *spec, "initContainers", "spec.initContainers"))
    for (size_t i = 0; i < init->size(); ++i)
      validate_container(errs, (*init)[i], index_path("spec.initContainers", i), names, true);
  if (containers)
    for (size_t i = 0; i < containers->size(); ++i)
      validate_container(errs, (*containers)[i], index_path("spec.containers", i), names, false);
  if (const json* rp = member(*spec, "restartPolicy")) {
    std::string v = rp->is_string() ? rp->get<std::string>() : rp->dump();
    if (v != "Always" && v != "OnFailure" && v != "Never")
      errs.not_supported("spec.restartPolicy", *rp, {"Always", "OnFailure", "Never"});
  }
  if (const json* dp = member(*spec, "dnsPolicy")) {
    std::string v = dp->is_string() ? dp->get<std::string>() : dp->dump();
    if (v != "ClusterFirstWithHostNet" && v != "ClusterFirst" && v != "Default" && v != "None")
      errs.not_supported("spec.dnsPolicy", *dp,
                         {"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"});
  }
  if (auto g = int_member(errs, *spec, "terminationGracePeriodSeconds",
                          "spec.terminationGracePeriodSeconds");
      g && *g < 0)
    errs.invalid("spec.terminationGracePeriodSeconds", *g, "must be greater than or equal to 0");
  if (auto a = int_member(errs, *spec, "activeDeadlineSeconds", "spec.activeDeadlineSeconds");
      a && (*a < 1 || *a > 2147483647))
    errs.invalid("spec.activeDeadlineSeconds", *a, "must be between 1 and 2147483647, inclusive");
  if (const json* nn = member(*spec, "nodeName");
      nn && errs.type_is(*nn, "spec.nodeName", json::value_t::string, "string") &&
      !nn->get_ref<const std::string&>().empty())
    errs.each("spec.nodeName", *nn, dns1123_subdomain_errors(nn->get<std::string>()));
  validate_labels(errs, string_map(errs, *spec, "nodeSelector", "spec.nodeSelector"),
                  "spec.nodeSelector");
  for (const char* f : {"hostname", "subdomain"})
    if (const json* h = member(*spec, f);
        h && errs.type_is(*h, std::string("spec.") + f, json::value_t::string, "string") &&
        !h->get_ref<const std::string&>().empty())
      errs.each(std::string("spec.") + f, *h, dns1123_label_errors(h->get<std::string>()));
}

// ----- config objects -----------------------------------------------------------------------

void validate_config_keys(Errors& errs, const json* map, const std::string& path) {
  if (!map) return;
  for (auto it = map->begin(); it != map->end(); ++it)
    errs.each(key_path(path, it.key()), it.key(), config_map_key_errors(it.key()));
}

void validate_immutable_data(Errors& errs, const json& obj, const json* old,
                             std::initializer_list<const char*> fields) {
  if (!old || !old->is_object()) return;
  const json* was = member(*old, "immutable");
  if (!was || !was->is_boolean() || !was->get<bool>()) return;
  for (const char* f : fields) {
    const json* a = member(*old, f);
    const json* b = member(obj, f);
    if ((a == nullptr) != (b == nullptr) || (a && *a != *b))
      errs.add(FieldErrorType::kForbidden, f, nullptr,
               "field is immutable when `immutable` is set");
  }
  const json* now = member(obj, "immutable");
  if (!now || !now->is_boolean() || !now->get<bool>())
    errs.add(FieldErrorType::kForbidden, "immutable", nullptr,
             "field is immutable when `immutable` is set");
}

void validate_config_map(Errors& errs, const json& obj, const json* old) {
  const json* data = string_map(errs, obj, "data", "data");
  const json* binary = string_map(errs, obj, "binaryData", "binaryData");
  validate_config_keys(errs, data, "data");
  validate_config_keys(errs, binary, "binaryData");
  size_t total = 0;
  if (data)
    for (auto it = data->begin(); it != data->end(); ++it)
      total += it.key().size() + it->get_ref<const std::string&>().size();
  if (binary) {
    for (auto it = binary->begin(); it != binary->end(); ++it) {
      if (data && data->contains(it.key()))
        errs.invalid(key_path("binaryData", it.key()), it.key(),
                     "duplicate of key present in data");
      auto bytes = common::base64_decode(it->get<std::string>());
      if (!bytes.ok())
        errs.invalid(key_path("binaryData", it.key()), "<binary>", bytes.status().message());
      else
        total += it.key().size() + bytes->size();
    }
  }
  if (total > kMaxConfigSize)
    errs.add(FieldErrorType::kTooLong, "data", nullptr,
             fmt::format("must have at most {} bytes", kMaxConfigSize));
  validate_immutable_data(errs, obj, old, {"data", "binaryData"});
}

void validate_secret(Errors& errs, const json& obj, const json* old) {
  const json* data = string_map(errs, obj, "data", "data");
  const json* string_data = string_map(errs, obj, "stringData", "stringData");
  validate_config_keys(errs, data, "data");
  validate_config_keys(errs, string_data, "stringData");
  size_t total = 0;
  std::set<std::string> keys;
  if (data) {
    for (auto it = data->begin(); it != data->end(); ++it) {
      keys.insert(it.key());
      auto bytes = common::base64_decode(it->get<std::string>());
      if (!bytes.ok())
        errs.invalid(key_path("data", it.key()), "<secret contents redacted>",
                     bytes.status().message());
      else
        total += it.key().size() + bytes->size();
    }
  }
  if (string_data)
    for (auto it = string_data->begin(); it != string_data->end(); ++it) {
      keys.insert(it.key());
      total += it.key().size() + it->get_ref<const std::string&>().size();
    }
  if (total > kMaxConfigSize)
    errs.add(FieldErrorType::kTooLong, "data", nullptr,
             fmt::format("must have at most {} bytes", kMaxConfigSize));
  std::string type = string_member(obj, "type");
  if (const json* t = member(obj, "type"))
    errs.type_is(*t, "type", json::value_t::string, "string");
  auto require_key = [&](const char* key) {
    if (!keys.count(key)) errs.required(key_path("data", key));
  };
  if (type == "kubernetes.io/service-account-token") {
    const json* meta = member(obj, "metadata");
    const json* ann = meta ? member(*meta, "annotations") : nullptr;
    if (!ann || !ann->is_object() ||
        string_member(*ann, "kubernetes.io/service-account.name").empty())
      errs.required("metadata.annotations[kubernetes.io/service-account.name]");
  } else if (type == "kubernetes.io/dockercfg") {
    require_key(".dockercfg");
  } else if (type == "kubernetes.io/dockerconfigjson") {
    require_key(".dockerconfigjson");
  } else if (type == "kubernetes.io/basic-auth") {
    if (!keys.count("username") && !keys.count("password"))
      errs.required("data[username]", "either username or password is required");
  } else if (type == "kubernetes.io/ssh-auth") {
    require_key("ssh-privatekey");
  } else if (type == "kubernetes.io/tls") {
    require_key("tls.crt");
    require_key("tls.key");
  } else if (!type.empty() && type != "Opaque" && qualified_name_errors(type).size() > 0) {
    errs.each("type", type, qualified_name_errors(type));
  }
  if (old && old->is_object()) {
    std::string old_type = string_member(*old, "type");
    if (old_type.empty()) old_type = "Opaque";
    if (!type.empty() && type != old_type) errs.invalid("type", type, "field is immutable");
  }
  validate_immutable_data(errs, obj, old, {"data", "stringData"});
}

// ----- nodes --------------------------------------------------------------------------------

void validate_node(Errors& errs, const json& obj) {
  const json* spec = member(obj, "spec");
  if (!spec || !errs.type_is(*spec, "spec", json::value_t::object, "object")) return;
  if (const json* u = member(*spec, "unschedulable"))
    errs.type_is(*u, "spec.unschedulable", json::value_t::boolean, "boolean");
  const json* taints = array_member(errs, *spec, "taints", "spec.taints");
  if (!taints) return;
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 0; i < taints->size(); ++i) {
    const json& t = (*taints)[i];
    std::string tp = index_path("spec.taints", i);
    if (!errs.type_is(t, tp, json::value_t::object, "object")) continue;
    std::string key = string_member(t, "key");
    if (key.empty())
      errs.required(tp + ".key");
    else
      errs.each(tp + ".key", key, qualified_name_errors(key));
    if (const json* v = member(t, "value");
        v && errs.type_is(*v, tp + ".value", json::value_t::string, "string"))
      errs.each(tp + ".value", *v, label_value_errors(v->get<std::string>()));
    std::string effect = string_member(t, "effect");
    if (effect.empty())
      errs.required(tp + ".effect");
    else if (effect != "NoSchedule" && effect != "PreferNoSchedule" && effect != "NoExecute")
      errs.not_supported(tp + ".effect", effect, {"NoSchedule", "PreferNoSchedule", "NoExecute"});
    else if (!seen.insert({key, effect}).second)
      errs.add(FieldErrorType::kDuplicate, tp, json{{"key", key}, {"effect", effect}},
               "taints must be unique by key and effect pair");
  }
}

// ----- defaults -----------------------------------------------------------------------------

json& child_object(json& obj, const char* key) {
  json& v = obj[key];
  if (!v.is_object()) v = json::object();
  return v;
}

void set_if_absent(json& obj, const char* key, json value) {
  if (!obj.contains(key) || obj[key].is_null()) obj[key] = std::move(value);
}

// Kubernetes: "Always" when the image has no tag or the tag is "latest", else "IfNotPresent".
std::string pull_policy_for(const std::string& image) {
  std::string_view ref = image;
  size_t at = ref.find('@');
  bool digest = at != std::string_view::npos;
  if (digest) ref = ref.substr(0, at);
  size_t slash = ref.rfind('/');
  size_t colon = ref.rfind(':');
  bool tagged =
      colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash);
  if (tagged) return ref.substr(colon + 1) == "latest" ? "Always" : "IfNotPresent";
  return digest ? "IfNotPresent" : "Always";
}

void default_container(json& c) {
  if (!c.is_object()) return;
  if (c.contains("image") && c["image"].is_string())
    set_if_absent(c, "imagePullPolicy", pull_policy_for(c["image"].get<std::string>()));
  set_if_absent(c, "terminationMessagePath", "/dev/termination-log");
  set_if_absent(c, "terminationMessagePolicy", "File");
  if (c.contains("ports") && c["ports"].is_array())
    for (json& p : c["ports"])
      if (p.is_object()) set_if_absent(p, "protocol", "TCP");
  // Limits without requests: requests default to the limits (core/v1 SetDefaults_Pod).
  if (c.contains("resources") && c["resources"].is_object()) {
    json& res = c["resources"];
    if (res.contains("limits") && res["limits"].is_object() && !res["limits"].empty()) {
      json& req = child_object(res, "requests");
      for (auto it = res["limits"].begin(); it != res["limits"].end(); ++it)
        if (!req.contains(it.key())) req[it.key()] = it.value();
    }
  }
}

void default_pod(json& obj) {
  if (!obj.contains("spec") || !obj["spec"].is_object()) return;
  json& spec = obj["spec"];
  set_if_absent(spec, "restartPolicy", "Always");
  set_if_absent(spec, "dnsPolicy", "ClusterFirst");
  set_if_absent(spec, "terminationGracePeriodSeconds", 30);
  set_if_absent(spec, "schedulerName", "default-scheduler");
  set_if_absent(spec, "securityContext", json::object());
  for (const char* list : {"containers", "initContainers"})
    if (spec.contains(list) && spec[list].is_array())
      for (json& c : spec[list]) default_container(c);
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (json& v : spec["volumes"]) {
      if (!v.is_object()) continue;
      for (const char* source : {"configMap", "secret"})
        if (v.contains(source) && v[source].is_object())
          set_if_absent(v[source], "defaultMode", 0644);
    }
  }
}

}  // namespace

// ----- FieldError ---------------------------------------------------------------------------

std::string FieldError::reason() const {
  switch (type) {
    case FieldErrorType::kNotFound:
      return "FieldValueNotFound";
    case FieldErrorType::kRequired:
      return "FieldValueRequired";
    case FieldErrorType::kDuplicate:
      return "FieldValueDuplicate";
    case FieldErrorType::kInvalid:
      return "FieldValueInvalid";
    case FieldErrorType::kNotSupported:
      return "FieldValueNotSupported";
    case FieldErrorType::kForbidden:
      return "FieldValueForbidden";
    case FieldErrorType::kTooLong:
      return "FieldValueTooLong";
    case FieldErrorType::kTooMany:
      return "FieldValueTooMany";
    case FieldErrorType::kTypeInvalid:
      return "FieldValueTypeInvalid";
  }
  return "FieldValueInvalid";
}

std::string FieldError::body() const {
  auto shown = [&] {
    if (value.is_string()) {
      // Go's %q, short form.
      std::string out = "\"";
      for (char c : value.get_ref<const std::string&>()) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
          continue;
        }
        out += c;
      }
      return out + "\"";
    }
    return value.dump();
  };
  std::string s;
  switch (type) {
    case FieldErrorType::kRequired:
      s = "Required value";
      break;
    case FieldErrorType::kForbidden:
      s = "Forbidden";
      break;
    case FieldErrorType::kTooLong:
      s = "Too long";
      break;
    case FieldErrorType::kNotFound:
      s = "Not found: " + shown();
      break;
    case FieldErrorType::kDuplicate:
      s = "Duplicate value: " + shown();
      break;
    case FieldErrorType::kNotSupported:
      s = "Unsupported value: " + shown();
      break;
    case FieldErrorType::kTooMany:
      s = "Too many: " + shown();
      break;
    case FieldErrorType::kInvalid:
    case FieldErrorType::kTypeInvalid:
      s = "Invalid value: " + shown();
      break;
  }
  if (!detail.empty()) s += ": " + detail;
  return s;
}

std::string FieldError::message() const {
  return field + ": " + body();
}

std::string invalid_message(std::string_view kind, std::string_view name,
                            const FieldErrors& errors) {
  std::string list;
  if (errors.size() == 1) {
    list = errors.front().message();
  } else {
    list = "[";
    for (size_t i = 0; i < errors.size(); ++i) list += (i ? ", " : "") + errors[i].message();
    list += "]";
  }
  return fmt::format("{} \"{}\" is invalid: {}", kind, name, list);
}

json invalid_status(std::string_view kind, std::string_view name, const FieldErrors& errors) {
  json causes = json::array();
  for (const auto& e : errors)
    causes.push_back({{"reason", e.reason()}, {"message", e.body()}, {"field", e.field}});
  return {{"kind", "Status"},
          {"apiVersion", "v1"},
          {"metadata", json::object()},
          {"status", "Failure"},
          {"message", invalid_message(kind, name, errors)},
          {"reason", "Invalid"},
          {"details", {{"name", name}, {"kind", kind}, {"causes", causes}}},
          {"code", 422}};
}

// ----- rules --------------------------------------------------------------------------------

std::vector<std::string> dns1123_label_errors(std::string_view value) {
  std::vector<std::string> out;
  if (value.size() > 63) out.emplace_back("must be no more than 63 characters");
  if (!is_label(value)) out.emplace_back(kDns1123LabelMsg);
  return out;
}

std::vector<std::string> dns1123_subdomain_errors(std::string_view value) {
  std::vector<std::string> out;
  if (value.size() > 253) out.emplace_back("must be no more than 253 characters");
  if (!is_subdomain(value)) out.emplace_back(kDns1123SubdomainMsg);
  return out;
}

std::vector<std::string> qualified_name_errors(std::string_view value) {
  std::vector<std::string> out;
  std::string_view name = value;
  size_t slash = value.find('/');
  if (slash != std::string_view::npos) {
    if (value.find('/', slash + 1) != std::string_view::npos) {
      out.push_back(
          fmt::format("a qualified name {} with an optional DNS subdomain prefix and "
                      "'/' (e.g. 'example.com/MyName')",
                      kQualifiedNameMsg));
      return out;
    }
    std::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (prefix.empty()) {
      out.emplace_back("prefix part must be non-empty");
    } else {
      for (const auto& m : dns1123_subdomain_errors(prefix)) out.push_back("prefix part " + m);
    }
  }
  if (name.empty()) {
    out.emplace_back("name part must be non-empty");
  } else if (name.size() > 63) {
    out.emplace_back("name part must be no more than 63 characters");
  }
  if (!name.empty() && !is_qualified_part(name))
    out.push_back(fmt::format("name part {}", kQualifiedNameMsg));
  return out;
}

std::vector<std::string> label_value_errors(std::string_view value) {
  std::vector<std::string> out;
  if (value.size() > 63) out.emplace_back("must be no more than 63 characters");
  if (!value.empty() && !is_qualified_part(value)) out.emplace_back(kLabelValueMsg);
  return out;
}

std::vector<std::string> config_map_key_errors(std::string_view value) {
  std::vector<std::string> out;
  if (value.size() > 253) out.emplace_back("must be no more than 253 characters");
  bool ok = !value.empty();
  for (char c : value)
    if (!alnum(c) && c != '-' && c != '_' && c != '.') ok = false;
  if (!ok) out.emplace_back(kConfigKeyMsg);
  for (auto& m : chdir_prefix_errors(value)) out.push_back(std::move(m));
  return out;
}

std::vector<std::string> env_var_name_errors(std::string_view value) {
  std::vector<std::string> out;
  bool ok = !value.empty() && !digit(value.front());
  for (char c : value)
    if (!alnum(c) && c != '-' && c != '_' && c != '.') ok = false;
  if (!ok) out.emplace_back(kEnvVarMsg);
  for (auto& m : chdir_prefix_errors(value)) out.push_back(std::move(m));
  return out;
}

std::vector<std::string> port_name_errors(std::string_view value) {
  std::vector<std::string> out;
  if (value.size() > 15) out.emplace_back("must be no more than 15 characters");
  bool chars_ok = true, letter = false;
  for (char c : value) {
    if (!lower_alnum(c) && c != '-') chars_ok = false;
    if (c >= 'a' && c <= 'z') letter = true;
  }
  if (!chars_ok)
    out.emplace_back("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  if (value.find("--") != std::string_view::npos)
    out.emplace_back("must not contain consecutive hyphens");
  if (!letter) out.emplace_back("must contain at least one letter (a-z)");
  if (!value.empty() && (value.front() == '-' || value.back() == '-'))
    out.emplace_back("must not begin or end with a hyphen");
  return out;
}

// ----- entry points -------------------------------------------------------------------------

void default_object(std::string_view kind, json& obj) {
  if (!obj.is_object()) return;
  if (kind == "Pod") {
    default_pod(obj);
  } else if (kind == "Secret") {
    set_if_absent(obj, "type", "Opaque");
  }
}

void set_create_metadata(json& obj, std::chrono::system_clock::time_point now) {
  json& meta = child_object(obj, "metadata");
  meta["uid"] = common::new_uid();
  meta["creationTimestamp"] = common::format_rfc3339(now);
}

FieldErrors validate_object(std::string_view kind, const json& obj, const json* old) {
  Errors errs;
  if (!obj.is_object()) {
    errs.add(FieldErrorType::kTypeInvalid, "<root>", nullptr, "must be of type object");
    return errs.take();
  }
  if (kind == "Pod") {
    validate_metadata(errs, obj, NameRule::kSubdomain, true, old);
    validate_pod_spec(errs, obj);
  } else if (kind == "Node") {
    validate_metadata(errs, obj, NameRule::kSubdomain, false, old);
    validate_node(errs, obj);
  } else if (kind == "Namespace") {
    validate_metadata(errs, obj, NameRule::kLabel, false, old);
  } else if (kind == "ConfigMap") {
    validate_metadata(errs, obj, NameRule::kSubdomain, true, old);
    validate_config_map(errs, obj, old);
  } else if (kind == "Secret") {
    validate_metadata(errs, obj, NameRule::kSubdomain, true, old);
    validate_secret(errs, obj, old);
  } else {
    // Events and what comes next: the metadata rules every kind shares. The server has set or
    // erased metadata.namespace from the URL, so its presence says whether the kind is namespaced.
    const json* meta = member(obj, "metadata");
    bool namespaced = meta && !string_member(*meta, "namespace").empty();
    validate_metadata(errs, obj, NameRule::kSubdomain, namespaced, old);
  }
  return errs.take();
}

}  // namespace gantry::cloud::api
