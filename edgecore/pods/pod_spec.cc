#include "edgecore/pods/pod_spec.h"

#include <fmt/format.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>

namespace gantry::edge {
namespace {

using common::Code;
using common::make_error;

std::string deterministic_bytes(const google::protobuf::MessageLite& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string hex_hash(std::string_view data) {
  return fmt::format("{:016x}", fnv1a(data));
}

const char* protocol_name(v1::Protocol p) {
  switch (p) {
    case v1::PROTOCOL_UDP:
      return "UDP";
    case v1::PROTOCOL_SCTP:
      return "SCTP";
    default:
      return "TCP";
  }
}

}  // namespace

uint64_t fnv1a(std::string_view data, uint64_t h) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

PodPaths pod_paths(const std::filesystem::path& data_dir, const std::string& ns,
                   const std::string& name, const std::string& uid) {
  return {data_dir / "pods" / uid, data_dir / "logs" / fmt::format("{}_{}_{}", ns, name, uid)};
}

std::filesystem::path volume_dir(const PodPaths& paths, const std::string& volume) {
  return paths.pod_dir / "volumes" / volume;
}

std::string container_log_path(const std::string& container, uint32_t attempt) {
  return fmt::format("{}/{}.log", container, attempt);
}

std::string sandbox_hash(const v1::Object& pod) {
  const v1::PodManifest& m = pod.pod();
  std::string key = fmt::format("net={};host={};", m.host_network(), m.hostname());
  for (const auto& c : m.containers()) {
    for (const auto& p : c.ports()) {
      key += fmt::format("{}:{}/{}@{};", p.container_port(), p.host_port(),
                         protocol_name(p.protocol()), p.host_ip());
    }
  }
  return hex_hash(key);
}

std::string container_hash(const v1::Container& container) {
  return hex_hash(deterministic_bytes(container));
}

std::map<std::string, std::string> pod_labels(const v1::Object& pod) {
  return {{kLabelPodNamespace, pod.namespace_()},
          {kLabelPodName, pod.name()},
          {kLabelPodUid, pod.uid()},
          {kLabelManagedBy, "edgecore"}};
}

SandboxConfig make_sandbox_config(const v1::Object& pod, const PodPaths& paths, uint32_t attempt) {
  const v1::PodManifest& m = pod.pod();
  SandboxConfig c;
  c.name = pod.name();
  c.ns = pod.namespace_();
  c.uid = pod.uid();
  c.attempt = attempt;
  // Host-network pods keep the node's hostname (setting one fails there).
  if (!m.host_network()) c.hostname = m.hostname().empty() ? pod.name() : m.hostname();
  c.log_directory = paths.log_dir.string();
  c.host_network = m.host_network();
  for (const auto& container : m.containers()) {
    for (const auto& p : container.ports()) {
      if (p.host_port() == 0 && !m.host_network()) continue;  // nothing to publish
      c.ports.push_back({p.container_port(), m.host_network() ? p.container_port() : p.host_port(),
                         protocol_name(p.protocol()), p.host_ip()});
    }
  }
  c.labels = pod_labels(pod);
  for (const auto& [k, v] : m.labels()) c.labels.emplace(k, v);
  c.annotations = {m.annotations().begin(), m.annotations().end()};
  c.annotations[kAnnotationSpecHash] = sandbox_hash(pod);
  return c;
}

LinuxResources linux_resources(const v1::Resources& r) {
  LinuxResources out;
  constexpr int64_t kPeriod = 100'000;  // microseconds
  if (r.cpu_request_millis() > 0) {
    out.cpu_shares = std::max<int64_t>(2, r.cpu_request_millis() * 1024 / 1000);
  } else if (r.cpu_limit_millis() > 0) {
    out.cpu_shares = std::max<int64_t>(2, r.cpu_limit_millis() * 1024 / 1000);
  } else {
    out.cpu_shares = 2;  // best effort, as Kubernetes
  }
  if (r.cpu_limit_millis() > 0) {
    out.cpu_period = kPeriod;
    out.cpu_quota = std::max<int64_t>(1000, r.cpu_limit_millis() * kPeriod / 1000);
  }
  out.memory_limit_bytes = r.memory_limit_bytes();
  return out;
}

common::Result<ContainerConfig> make_container_config(const v1::Object& pod,
                                                      const v1::Container& container,
                                                      const PodPaths& paths, uint32_t attempt,
                                                      const std::string& image_ref,
                                                      const ConfigLookup& lookup) {
  const v1::PodManifest& m = pod.pod();
  ContainerConfig c;
  c.name = container.name();
  c.attempt = attempt;
  c.image = image_ref.empty() ? container.image() : image_ref;
  c.command = {container.command().begin(), container.command().end()};
  c.args = {container.args().begin(), container.args().end()};
  c.working_dir = container.working_dir();
  c.tty = container.tty();
  c.stdin_open = container.stdin();
  c.log_path = container_log_path(container.name(), attempt);
  c.resources = linux_resources(container.resources());

  for (const auto& e : container.env()) {
    switch (e.source_case()) {
      case v1::EnvVar::kConfigMapKey:
      case v1::EnvVar::kSecretKey: {
        bool secret = e.source_case() == v1::EnvVar::kSecretKey;
        const v1::KeyRef& ref = secret ? e.secret_key() : e.config_map_key();
        const char* what = secret ? "secret" : "configmap";
        auto data = lookup(secret ? v1::OBJECT_KIND_SECRET : v1::OBJECT_KIND_CONFIG_MAP,
                           pod.namespace_(), ref.name());
        if (!data) {
          if (ref.optional()) continue;
          return make_error(Code::kNotFound, "{} \"{}\" not found", what, ref.name());
        }
        auto it = data->data().find(ref.key());
        if (it == data->data().end()) {
          if (ref.optional()) continue;
          return make_error(Code::kNotFound, "couldn't find key {} in {} {}/{}", ref.key(), what,
                            pod.namespace_(), ref.name());
        }
        c.envs.emplace_back(e.name(), it->second);
        break;
      }
      default:
        c.envs.emplace_back(e.name(), e.value());
    }
  }

  for (const auto& vm : container.volume_mounts()) {
    auto vol = std::find_if(m.volumes().begin(), m.volumes().end(),
                            [&](const v1::Volume& v) { return v.name() == vm.name(); });
    if (vol == m.volumes().end()) {
      return make_error(Code::kInvalidArgument, "volume mount \"{}\" names no volume of the pod",
                        vm.name());
    }
    std::filesystem::path host = vol->source_case() == v1::Volume::kHostPath
                                     ? std::filesystem::path(vol->host_path().path())
                                     : volume_dir(paths, vm.name());
    if (!vm.sub_path().empty()) {
      std::filesystem::path sub(vm.sub_path());
      if (sub.is_absolute() || sub.lexically_normal().string().rfind("..", 0) == 0) {
        return make_error(Code::kInvalidArgument,
                          "subPath \"{}\" must be a relative path inside the volume",
                          vm.sub_path());
      }
      host /= sub;
    }
    bool read_only = vm.read_only() || vol->source_case() == v1::Volume::kConfigMap ||
                     vol->source_case() == v1::Volume::kSecret;
    c.mounts.push_back({vm.mount_path(), host.string(), read_only});
  }

  c.labels = pod_labels(pod);
  c.labels[kLabelContainerName] = container.name();
  c.annotations[kAnnotationSpecHash] = container_hash(container);
  c.annotations[kAnnotationImage] = container.image();
  return c;
}

}  // namespace gantry::edge
