#include "cloudcore/registry/objects.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/base/json.h"
#include "common/base/parse.h"

namespace gantry::cloud {
namespace {

using common::Code;
using common::make_error;
using common::Result;
using common::Status;
using nlohmann::json;

Result<std::string> base64_decode(std::string_view in, std::string_view field) {
  auto out = common::base64_decode(in);
  if (!out.ok()) return make_error(Code::kInvalidArgument, "{}: {}", field, out.status().message());
  return out;
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t num(const json& j, const char* key, int64_t fallback = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

bool flag(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

// Collects the first error so that the decoding code reads straight through.
struct Decoder {
  Status error;
  void fail(Status s) {
    if (error.ok()) error = std::move(s);
  }
};

void decode_string_map(const json& j, const char* key,
                       google::protobuf::Map<std::string, std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return;
  for (const auto& [k, v] : it->items())
    if (v.is_string()) (*out)[k] = v.get<std::string>();
}

v1::Container decode_container(const json& c, const std::string& path, Decoder& d,
                               std::set<std::string>& config_maps, std::set<std::string>& secrets) {
  v1::Container out;
  out.set_name(str(c, "name"));
  out.set_image(str(c, "image"));
  if (out.name().empty()) d.fail(make_error(Code::kInvalidArgument, "{}.name: required", path));
  if (out.image().empty()) d.fail(make_error(Code::kInvalidArgument, "{}.image: required", path));
  for (const char* key : {"command", "args"}) {
    auto it = c.find(key);
    if (it == c.end()) continue;
    if (!it->is_array()) {
      d.fail(make_error(Code::kInvalidArgument, "{}.{}: must be a list of strings", path, key));
      continue;
    }
    for (const auto& s : *it) {
      if (!s.is_string()) {
        d.fail(make_error(Code::kInvalidArgument, "{}.{}: must be a list of strings", path, key));
        break;
      }
      (std::string_view(key) == "command" ? out.add_command() : out.add_args())
          ->assign(s.get<std::string>());
    }
  }
  out.set_working_dir(str(c, "workingDir"));
  out.set_tty(flag(c, "tty"));
  out.set_stdin(flag(c, "stdin"));
  std::string pull = str(c, "imagePullPolicy");
  if (pull == "Always")
    out.set_image_pull_policy(v1::PULL_POLICY_ALWAYS);
  else if (pull == "Never")
    out.set_image_pull_policy(v1::PULL_POLICY_NEVER);
  else if (!pull.empty() && pull != "IfNotPresent")
    d.fail(make_error(Code::kInvalidArgument,
                      "{}.imagePullPolicy: '{}' is not Always, IfNotPresent or Never", path, pull));

  if (auto env = c.find("env"); env != c.end() && env->is_array()) {
    for (size_t i = 0; i < env->size(); ++i) {
      const json& e = (*env)[i];
      auto* var = out.add_env();
      var->set_name(str(e, "name"));
      if (auto vf = e.find("valueFrom"); vf != e.end() && vf->is_object()) {
        for (const auto& [ref_key, is_secret] :
             {std::pair{"configMapKeyRef", false}, std::pair{"secretKeyRef", true}}) {
          auto ref = vf->find(ref_key);
          if (ref == vf->end()) continue;
          v1::KeyRef* key_ref =
              is_secret ? var->mutable_secret_key() : var->mutable_config_map_key();
          key_ref->set_name(str(*ref, "name"));
          key_ref->set_key(str(*ref, "key"));
          key_ref->set_optional(flag(*ref, "optional"));
          (is_secret ? secrets : config_maps).insert(key_ref->name());
        }
      } else {
        var->set_value(str(e, "value"));
      }
    }
  }
  if (auto ports = c.find("ports"); ports != c.end() && ports->is_array()) {
    for (const auto& p : *ports) {
      auto* port = out.add_ports();
      port->set_name(str(p, "name"));
      port->set_container_port(static_cast<int32_t>(num(p, "containerPort")));
      port->set_host_port(static_cast<int32_t>(num(p, "hostPort")));
      port->set_host_ip(str(p, "hostIP"));
      std::string proto = str(p, "protocol");
      port->set_protocol(proto == "UDP"    ? v1::PROTOCOL_UDP
                         : proto == "SCTP" ? v1::PROTOCOL_SCTP
                                           : v1::PROTOCOL_TCP);
    }
  }
  if (auto res = c.find("resources"); res != c.end() && res->is_object()) {
    auto* r = out.mutable_resources();
    for (const auto& [section, is_limit] :
         {std::pair{"requests", false}, std::pair{"limits", true}}) {
      auto sec = res->find(section);
      if (sec == res->end() || !sec->is_object()) continue;
      if (auto cpu = sec->find("cpu"); cpu != sec->end()) {
        std::string q = cpu->is_string() ? cpu->get<std::string>() : cpu->dump();
        auto v = parse_cpu_millis(q);
        if (!v.ok())
          d.fail(v.status().with_context(fmt::format("{}.resources.{}.cpu", path, section)));
        else if (is_limit)
          r->set_cpu_limit_millis(*v);
        else
          r->set_cpu_request_millis(*v);
      }
      if (auto mem = sec->find("memory"); mem != sec->end()) {
        std::string q = mem->is_string() ? mem->get<std::string>() : mem->dump();
        auto v = parse_bytes_quantity(q);
        if (!v.ok())
          d.fail(v.status().with_context(fmt::format("{}.resources.{}.memory", path, section)));
        else if (is_limit)
          r->set_memory_limit_bytes(*v);
        else
          r->set_memory_request_bytes(*v);
      }
    }
  }
  if (auto mounts = c.find("volumeMounts"); mounts != c.end() && mounts->is_array()) {
    for (const auto& m : *mounts) {
      auto* mount = out.add_volume_mounts();
      mount->set_name(str(m, "name"));
      mount->set_mount_path(str(m, "mountPath"));
      mount->set_read_only(flag(m, "readOnly"));
      mount->set_sub_path(str(m, "subPath"));
    }
  }
  return out;
}

void decode_config_volume(const json& src, const char* name_key, v1::ConfigVolume* out) {
  out->set_name(str(src, name_key));
  out->set_default_mode(static_cast<int32_t>(num(src, "defaultMode", 0644)));
  out->set_optional(flag(src, "optional"));
  if (auto items = src.find("items"); items != src.end() && items->is_array()) {
    for (const auto& item : *items) {
      auto* kp = out->add_items();
      kp->set_key(str(item, "key"));
      kp->set_path(str(item, "path"));
      kp->set_mode(static_cast<int32_t>(num(item, "mode")));
    }
  }
}

Status decode_pod(const json& obj, v1::StoredObject& stored) {
  Decoder d;
  const json empty = json::object();
  const json& spec = obj.contains("spec") && obj["spec"].is_object() ? obj["spec"] : empty;
  const json& meta = obj["metadata"];
  auto* pod = stored.mutable_edge()->mutable_pod();
  std::set<std::string> config_maps, secrets;

  auto containers = spec.find("containers");
  if (containers == spec.end() || !containers->is_array() || containers->empty())
    return make_error(Code::kInvalidArgument,
                      "spec.containers: a pod needs at least one container");
  for (size_t i = 0; i < containers->size(); ++i)
    *pod->add_containers() = decode_container(
        (*containers)[i], fmt::format("spec.containers[{}]", i), d, config_maps, secrets);
  if (auto init = spec.find("initContainers"); init != spec.end() && init->is_array())
    for (size_t i = 0; i < init->size(); ++i)
      *pod->add_init_containers() = decode_container(
          (*init)[i], fmt::format("spec.initContainers[{}]", i), d, config_maps, secrets);

  if (auto vols = spec.find("volumes"); vols != spec.end() && vols->is_array()) {
    for (size_t i = 0; i < vols->size(); ++i) {
      const json& v = (*vols)[i];
      auto* vol = pod->add_volumes();
      vol->set_name(str(v, "name"));
      if (auto ed = v.find("emptyDir"); ed != v.end()) {
        vol->mutable_empty_dir()->set_memory(ed->is_object() && str(*ed, "medium") == "Memory");
        if (ed->is_object() && ed->contains("sizeLimit")) {
          auto limit = parse_bytes_quantity(str(*ed, "sizeLimit"));
          if (limit.ok()) vol->mutable_empty_dir()->set_size_limit_bytes(*limit);
        }
      } else if (auto hp = v.find("hostPath"); hp != v.end() && hp->is_object()) {
        vol->mutable_host_path()->set_path(str(*hp, "path"));
        vol->mutable_host_path()->set_type(str(*hp, "type"));
      } else if (auto cm = v.find("configMap"); cm != v.end() && cm->is_object()) {
        decode_config_volume(*cm, "name", vol->mutable_config_map());
        config_maps.insert(vol->config_map().name());
      } else if (auto sec = v.find("secret"); sec != v.end() && sec->is_object()) {
        decode_config_volume(*sec, "secretName", vol->mutable_secret());
        secrets.insert(vol->secret().name());
      } else {
        // Other volume types are stored but not honoured by the edge (the API warns about them).
      }
    }
  }
  std::string restart = str(spec, "restartPolicy");
  if (restart == "OnFailure")
    pod->set_restart_policy(v1::RESTART_POLICY_ON_FAILURE);
  else if (restart == "Never")
    pod->set_restart_policy(v1::RESTART_POLICY_NEVER);
  else if (!restart.empty() && restart != "Always")
    return make_error(Code::kInvalidArgument,
                      "spec.restartPolicy: '{}' is not Always, OnFailure or Never", restart);
  pod->set_host_network(flag(spec, "hostNetwork"));
  pod->set_termination_grace_period_seconds(num(spec, "terminationGracePeriodSeconds", 30));
  pod->set_hostname(str(spec, "hostname"));
  decode_string_map(meta, "labels", pod->mutable_labels());
  decode_string_map(meta, "annotations", pod->mutable_annotations());
  if (meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null()) {
    pod->set_terminating(true);
    pod->set_deletion_grace_period_seconds(
        num(meta, "deletionGracePeriodSeconds", pod->termination_grace_period_seconds()));
  }
  stored.set_node_name(str(spec, "nodeName"));
  for (const auto& n : config_maps)
    if (!n.empty()) stored.add_config_maps(n);
  for (const auto& n : secrets)
    if (!n.empty()) stored.add_secrets(n);
  return d.error;
}

Status decode_config(const json& obj, bool secret, v1::ConfigData* out) {
  if (auto data = obj.find("data"); data != obj.end() && data->is_object()) {
    for (const auto& [k, v] : data->items()) {
      if (!v.is_string()) return make_error(Code::kInvalidArgument, "data.{}: must be a string", k);
      if (secret) {
        GANTRY_ASSIGN_OR_RETURN(auto bytes, base64_decode(v.get<std::string>(), "data." + k));
        (*out->mutable_data())[k] = std::move(bytes);
      } else {
        (*out->mutable_data())[k] = v.get<std::string>();
      }
    }
  }
  const char* extra = secret ? "stringData" : "binaryData";
  if (auto data = obj.find(extra); data != obj.end() && data->is_object()) {
    for (const auto& [k, v] : data->items()) {
      if (!v.is_string())
        return make_error(Code::kInvalidArgument, "{}.{}: must be a string", extra, k);
      if (secret) {
        (*out->mutable_data())[k] = v.get<std::string>();
      } else {
        GANTRY_ASSIGN_OR_RETURN(auto bytes,
                                base64_decode(v.get<std::string>(), std::string(extra) + "." + k));
        (*out->mutable_data())[k] = std::move(bytes);
      }
    }
  }
  return common::ok_status();
}

// Splits "123.5Mi" into the number and its suffix.
Result<std::pair<double, std::string_view>> split_quantity(std::string_view q) {
  if (q.empty()) return make_error(Code::kInvalidArgument, "empty quantity");
  size_t end = 0;
  while (end < q.size() && (std::isdigit(static_cast<unsigned char>(q[end])) || q[end] == '.' ||
                            q[end] == '+' || q[end] == '-'))
    ++end;
  // An exponent such as 1e3 belongs to the number.
  if (end < q.size() && (q[end] == 'e' || q[end] == 'E') && end + 1 < q.size() &&
      (std::isdigit(static_cast<unsigned char>(q[end + 1])) || q[end + 1] == '-' ||
       q[end + 1] == '+')) {
    ++end;
    while (end < q.size() &&
           (std::isdigit(static_cast<unsigned char>(q[end])) || q[end] == '-' || q[end] == '+'))
      ++end;
  }
  double value = 0;
  auto [ptr, ec] = std::from_chars(q.data(), q.data() + end, value);
  if (ec != std::errc() || ptr != q.data() + end || value < 0 || !std::isfinite(value))
    return make_error(Code::kInvalidArgument, "'{}' is not a quantity (e.g. 100m, 0.5, 128Mi, 1G)",
                      q);
  return std::pair{value, q.substr(end)};
}

}  // namespace

Result<int64_t> parse_cpu_millis(std::string_view quantity) {
  GANTRY_ASSIGN_OR_RETURN(auto parts, split_quantity(quantity));
  auto [value, suffix] = parts;
  if (suffix.empty()) return static_cast<int64_t>(std::ceil(value * 1000));
  if (suffix == "m") return static_cast<int64_t>(std::ceil(value));
  return make_error(Code::kInvalidArgument, "'{}' is not a cpu quantity (e.g. 100m, 0.5, 2)",
                    quantity);
}

std::optional<double> parse_quantity(std::string_view quantity) {
  if (quantity.size() > 64) return std::nullopt;
  double sign = 1;
  if (!quantity.empty() && (quantity[0] == '+' || quantity[0] == '-')) {
    sign = quantity[0] == '-' ? -1 : 1;
    quantity.remove_prefix(1);
  }
  auto parts = split_quantity(quantity);
  if (!parts.ok()) return std::nullopt;
  auto [value, suffix] = *parts;
  static const std::map<std::string_view, double> kSuffixes = {{"", 1},
                                                               {"n", 1e-9},
                                                               {"u", 1e-6},
                                                               {"m", 1e-3},
                                                               {"k", 1e3},
                                                               {"M", 1e6},
                                                               {"G", 1e9},
                                                               {"T", 1e12},
                                                               {"P", 1e15},
                                                               {"E", 1e18},
                                                               {"Ki", 1024.0},
                                                               {"Mi", 1048576.0},
                                                               {"Gi", 1073741824.0},
                                                               {"Ti", 1099511627776.0},
                                                               {"Pi", 1125899906842624.0},
                                                               {"Ei", 1152921504606846976.0}};
  auto it = kSuffixes.find(suffix);
  if (it == kSuffixes.end()) return std::nullopt;
  return sign * value * it->second;
}

Result<int64_t> parse_bytes_quantity(std::string_view quantity) {
  GANTRY_ASSIGN_OR_RETURN(auto parts, split_quantity(quantity));
  auto [value, suffix] = parts;
  static const std::pair<std::string_view, double> kSuffixes[] = {{"", 1},
                                                                  {"k", 1e3},
                                                                  {"K", 1e3},
                                                                  {"M", 1e6},
                                                                  {"G", 1e9},
                                                                  {"T", 1e12},
                                                                  {"P", 1e15},
                                                                  {"E", 1e18},
                                                                  {"Ki", 1024.0},
                                                                  {"Mi", 1048576.0},
                                                                  {"Gi", 1073741824.0},
                                                                  {"Ti", 1099511627776.0},
                                                                  {"Pi", 1125899906842624.0},
                                                                  {"m", 1e-3}};
  for (const auto& [s, mult] : kSuffixes)
    if (suffix == s) return static_cast<int64_t>(std::ceil(value * mult));
  return make_error(Code::kInvalidArgument, "'{}' is not a byte quantity (e.g. 128Mi, 1G, 512)",
                    quantity);
}

Result<v1::StoredObject> decode_object(v1::ObjectKind kind, std::string_view text) {
  GANTRY_ASSIGN_OR_RETURN(json obj, common::parse_json(text));
  if (!obj.is_object()) return make_error(Code::kInvalidArgument, "the body must be a JSON object");
  if (!obj.contains("metadata") || !obj["metadata"].is_object())
    return make_error(Code::kInvalidArgument, "metadata: required");
  const json& meta = obj["metadata"];
  v1::StoredObject stored;
  stored.set_json(std::string(text));
  auto* edge = stored.mutable_edge();
  edge->set_kind(kind);
  edge->set_name(str(meta, "name"));
  if (edge->name().empty()) return make_error(Code::kInvalidArgument, "metadata.name: required");
  if (kind != v1::OBJECT_KIND_NODE)
    edge->set_namespace_(str(meta, "namespace").empty() ? "default" : str(meta, "namespace"));
  edge->set_uid(str(meta, "uid"));
  decode_string_map(meta, "labels", stored.mutable_labels());
  switch (kind) {
    case v1::OBJECT_KIND_POD:
      GANTRY_RETURN_IF_ERROR(decode_pod(obj, stored));
      break;
    case v1::OBJECT_KIND_CONFIG_MAP:
      GANTRY_RETURN_IF_ERROR(decode_config(obj, false, edge->mutable_config_map()));
      break;
    case v1::OBJECT_KIND_SECRET:
      GANTRY_RETURN_IF_ERROR(decode_config(obj, true, edge->mutable_secret()));
      break;
    case v1::OBJECT_KIND_NODE:
      break;
    default:
      return make_error(Code::kInvalidArgument, "unsupported object kind {}",
                        static_cast<int>(kind));
  }
  return stored;
}

}  // namespace gantry::cloud
