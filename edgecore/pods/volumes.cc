#include "edgecore/pods/volumes.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <system_error>

namespace gantry::edge {
namespace {

namespace fs = std::filesystem;
using common::Code;
using common::make_error;

// Opens (creating) the directory `rel` under the directory `root_fd`, one component at a time and
// never through a symlink: whatever a container or a race put in the staging directory, no write
// lands outside it.
int open_dir_below(int root_fd, const fs::path& rel) {
  int fd = ::dup(root_fd);
  for (const auto& part : rel) {
    if (fd < 0) return -1;
    if (::mkdirat(fd, part.c_str(), 0755) != 0 && errno != EEXIST) {
      ::close(fd);
      return -1;
    }
    int next = ::openat(fd, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ::close(fd);
    fd = next;
  }
  return fd;
}

common::Status write_all(int fd, const std::string& content, const fs::path& path) {
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(Code::kInternal, "cannot write {}: {}", path.string(), strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  return common::ok_status();
}

// A host file (hostPath FileOrCreate).
common::Status write_file(const fs::path& path, const std::string& content, int mode) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return make_error(Code::kInternal, "cannot write {}: {}", path.string(), strerror(errno));
  common::Status s = write_all(fd, content, path);
  ::fchmod(fd, mode);
  ::close(fd);
  return s;
}

// A volume file `rel` (checked with check_volume_path) under the directory `root_fd`.
common::Status write_file_below(int root_fd, const fs::path& root, const fs::path& rel,
                                const std::string& content, int mode) {
  fs::path path = root / rel;
  int dir = open_dir_below(root_fd, rel.parent_path());
  if (dir < 0) {
    return make_error(Code::kInternal, "cannot create the directory of {}: {}", path.string(),
                      strerror(errno));
  }
  int fd = ::openat(dir, rel.filename().c_str(),
                    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  ::close(dir);
  if (fd < 0)
    return make_error(Code::kInternal, "cannot write {}: {}", path.string(), strerror(errno));
  common::Status s = write_all(fd, content, path);
  ::fchmod(fd, mode);
  ::fsync(fd);  // the ..data swap must never point at files a power cut could leave empty
  ::close(fd);
  return s;
}

bool is_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
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
  auto refuse = [&](const std::string& field, const common::Status& why) {
    return make_error(Code::kInvalidArgument,
                      "volume \"{}\": {} {}/{}: {} refused, nothing written: {}", volume.name(),
                      what, pod.namespace_(), src.name(), field, why.message());
  };
  int mode = src.default_mode() > 0 ? src.default_mode() : 0644;
  std::map<std::string, VolumeFile> files;
  if (data) {
    if (src.items().empty()) {
      for (const auto& [key, value] : data->data()) {
        if (auto s = check_volume_key(key); !s.ok()) return refuse("key", s);
        files[key] = {value, mode};
      }
    } else {
      for (const auto& item : src.items()) {
        const std::string& rel = item.path().empty() ? item.key() : item.path();
        if (auto s = check_volume_path(rel); !s.ok()) return refuse("items[].path", s);
        auto it = data->data().find(item.key());
        if (it == data->data().end()) {
          if (src.optional()) continue;
          return make_error(Code::kNotFound, "volume \"{}\": key {} not found in {} {}/{}",
                            volume.name(), item.key(), what, pod.namespace_(), src.name());
        }
        files[rel] = {it->second, item.mode() > 0 ? item.mode() : mode};
      }
    }
  }
  return write_atomic_dir(volume_dir(paths, volume.name()), files);
}

}  // namespace

common::Status check_volume_key(std::string_view key) {
  if (key.empty()) return make_error(Code::kInvalidArgument, "an empty key");
  if (key.size() > 253) {
    return make_error(Code::kInvalidArgument, "key \"{}...\" is longer than 253 characters",
                      key.substr(0, 32));
  }
  if (!std::all_of(key.begin(), key.end(), is_key_char)) {
    return make_error(Code::kInvalidArgument,
                      "key \"{}\" is not a valid file name (must consist of alphanumeric "
                      "characters, '-', '_' or '.')",
                      key);
  }
  if (key == "." || key == ".." || key.rfind("..", 0) == 0) {
    return make_error(Code::kInvalidArgument, "key \"{}\" must not be '.', '..' or start with '..'",
                      key);
  }
  return common::ok_status();
}

common::Status check_volume_path(std::string_view path) {
  auto bad = [&](std::string_view why) {
    return make_error(Code::kInvalidArgument, "path \"{}\" {}", path, why);
  };
  if (path.empty()) return bad("is empty");
  if (path.size() > 4096) return bad("is longer than 4096 bytes");
  if (path.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
  if (path.front() == '/') return bad("must be a relative path inside the volume");
  size_t start = 0;
  bool first = true;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty()) return bad("has an empty component");
    if (part == "." || part == "..") return bad("must not contain '.' or '..' components");
    if (part.size() > 255) return bad("has a component longer than 255 bytes");
    if (first && part.rfind("..", 0) == 0) return bad("must not start with '..'");
    first = false;
    start = end + 1;
  }
  return common::ok_status();
}

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
  for (const auto& [rel, file] : files) GANTRY_RETURN_IF_ERROR(check_volume_path(rel));
  std::string version = fmt::format("..{:016x}", h);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error(Code::kInternal, "cannot create {}: {}", dir.string(), ec.message());
  fs::path data_link = dir / "..data";
  if (fs::is_symlink(data_link, ec) && fs::read_symlink(data_link, ec) == version) {
    return common::ok_status();  // already this content
  }

  fs::path staging = dir / version;
  fs::remove_all(staging, ec);  // a symlink there is removed, not followed
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0)
    return make_error(Code::kInternal, "cannot open {}: {}", dir.string(), strerror(errno));
  int staging_fd = open_dir_below(dir_fd, version);
  ::close(dir_fd);
  if (staging_fd < 0)
    return make_error(Code::kInternal, "cannot create {}: {}", staging.string(), strerror(errno));
  common::Status written;
  for (const auto& [rel, file] : files) {
    written = write_file_below(staging_fd, staging, rel, file.content, file.mode);
    if (!written.ok()) break;
  }
  ::close(staging_fd);
  GANTRY_RETURN_IF_ERROR(written);
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
    // The name is a directory under the pod's: nothing that could leave it.
    if (auto name = check_volume_key(volume.name()); !name.ok()) {
      keep(make_error(Code::kInvalidArgument, "volume name refused: {}", name.message()));
      continue;
    }
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
