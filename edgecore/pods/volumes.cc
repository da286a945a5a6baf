#include "edgecore/pods/volumes.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <system_error>

namespace gantry::edge {
namespace {

namespace fs = std::filesystem;
using common::Code;
using common::make_error;

common::Status write_file(const fs::path& path, const std::string& content, int mode) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return make_error(Code::kInternal, "cannot write {}: {}", path.string(), strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return make_error(Code::kInternal, "cannot write {}: {}", path.string(), strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);
  ::fsync(fd);  // the ..data swap must never point at files a power cut could leave empty
  ::close(fd);
  return common::ok_status();
}

// The visible top-level names of a set of relative paths ("a/b" -> "a").
std::set<std::string> top_names(const std::map<std::string, VolumeFile>& files) {
  std::set<std::string> out;
  for (const auto& [rel, file] : files) out.insert(fs::path(rel).begin()->string());
  return out;
}

common::Status config_volume(const v1::Object& pod, const v1::Volume& volume, const PodPaths& paths,
                             const ConfigLookup& lookup) {
  bool secret = volume.source_case() == v1::Volume::kSecret;
  const v1::ConfigVolume& src = secret ? volume.secret() : volume.config_map();
  const char* what = secret ? "secret" : "configmap";
  auto data = lookup(secret ? v1::OBJECT_KIND_SECRET : v1::OBJECT_KIND_CONFIG_MAP, pod.namespace_(),
                     src.name());
  if (!data && !src.optional()) {
    return make_error(Code::kNotFound, "volume \"{}\": {} \"{}\" not found", volume.name(), what,
                      src.name());
  }
  int mode = src.default_mode() > 0 ? src.default_mode() : 0644;
  std::map<std::string, VolumeFile> files;
  if (data) {
    if (src.items().empty()) {
      for (const auto& [key, value] : data->data()) files[key] = {value, mode};
    } else {
      for (const auto& item : src.items()) {
        auto it = data->data().find(item.key());
        if (it == data->data().end()) {
          if (src.optional()) continue;
          return make_error(Code::kNotFound, "volume \"{}\": key {} not found in {} {}/{}",
                            volume.name(), item.key(), what, pod.namespace_(), src.name());
        }
        fs::path rel(item.path().empty() ? item.key() : item.path());
        if (rel.is_absolute() || rel.lexically_normal().string().rfind("..", 0) == 0) {
          return make_error(Code::kInvalidArgument,
                            "volume \"{}\": path \"{}\" must stay inside the volume", volume.name(),
                            item.path());
        }
        files[rel.lexically_normal().string()] = {it->second, item.mode() > 0 ? item.mode() : mode};
      }
    }
  }
  return write_atomic_dir(volume_dir(paths, volume.name()), files);
}

}  // namespace

common::Status write_atomic_dir(const fs::path& dir,
                                const std::map<std::string, VolumeFile>& files) {
  // Names, contents and modes: a change of any of them is a new version. Every field ends with a
  // NUL so that moving bytes from one field to the next changes the hash.
  const std::string_view nul("\0", 1);
  uint64_t h = kFnvOffset;
  for (const auto& [rel, file] : files) {
    for (std::string_view field : {std::string_view(rel), std::string_view(file.content)}) {
      h = fnv1a(nul, fnv1a(field, h));
    }
    h = fnv1a(nul, fnv1a(std::to_string(file.mode), h));
  }
  std::string version = fmt::format("..{:016x}", h);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(Code::kInternal, "cannot create {}: {}", dir.string(), ec.message());
  fs::path data_link = dir / "..data";
  if (fs::is_symlink(data_link, ec) && fs::read_symlink(data_link, ec) == version) {
    return common::ok_status();  // already this content
  }

  fs::path staging = dir / version;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  for (const auto& [rel, file] : files) {
    GANTRY_RETURN_IF_ERROR(write_file(staging / rel, file.content, file.mode));
  }
  fs::path tmp_link = dir / "..data_tmp";
  fs::remove(tmp_link, ec);
  fs::create_symlink(version, tmp_link, ec);
  if (ec) return make_error(Code::kInternal, "cannot link {}: {}", tmp_link.string(), ec.message());
  fs::rename(tmp_link, data_link, ec);
  if (ec)
    return make_error(Code::kInternal, "cannot swap {}: {}", data_link.string(), ec.message());

  // Visible names: one symlink per top-level name through ..data; stale ones go.
  std::set<std::string> names = top_names(files);
  for (const auto& name : names) {
    fs::path link = dir / name;
    if (fs::is_symlink(link, ec)) continue;
    fs::create_symlink(fs::path("..data") / name, link, ec);
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("..", 0) == 0) {
      if (name != "..data" && name != version) fs::remove_all(entry.path(), ec);
      continue;
    }
    if (!names.count(name)) fs::remove(entry.path(), ec);
  }
  return common::ok_status();
}

common::Status setup_volumes(const v1::Object& pod, const PodPaths& paths,
                             const ConfigLookup& lookup) {
  common::Status first;
  auto keep = [&](common::Status s) {
    if (!s.ok() && first.ok()) first = std::move(s);
  };
  std::error_code ec;
  for (const auto& volume : pod.pod().volumes()) {
    switch (volume.source_case()) {
      case v1::Volume::kEmptyDir:
        fs::create_directories(volume_dir(paths, volume.name()), ec);
        if (ec) keep(make_error(Code::kInternal, "volume \"{}\": {}", volume.name(), ec.message()));
        break;
      case v1::Volume::kHostPath: {
        const auto& hp = volume.host_path();
        fs::path p(hp.path());
        if (!p.is_absolute()) {
          keep(make_error(Code::kInvalidArgument, "volume \"{}\": hostPath \"{}\" is not absolute",
                          volume.name(), hp.path()));
        } else if (hp.type() == "DirectoryOrCreate") {
          fs::create_directories(p, ec);
        } else if (hp.type() == "FileOrCreate" && !fs::exists(p, ec)) {
          fs::create_directories(p.parent_path(), ec);
          keep(write_file(p, "", 0644));
        } else if ((hp.type() == "Directory" && !fs::is_directory(p, ec)) ||
                   (hp.type() == "File" && !fs::is_regular_file(p, ec))) {
          keep(make_error(Code::kNotFound, "volume \"{}\": hostPath {} is not a {}", volume.name(),
                          hp.path(), hp.type() == "File" ? "file" : "directory"));
        }
        break;
      }
      case v1::Volume::kConfigMap:
      case v1::Volume::kSecret:
        keep(config_volume(pod, volume, paths, lookup));
        break;
      default:
        keep(make_error(Code::kInvalidArgument, "volume \"{}\": no source this edge supports",
                        volume.name()));
    }
  }
  return first;
}

void remove_pod_dirs(const PodPaths& paths) {
  std::error_code ec;
  fs::remove_all(paths.pod_dir, ec);
  fs::remove_all(paths.log_dir, ec);
}

}  // namespace gantry::edge
