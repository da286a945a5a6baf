// A pod's volumes on the node's disk, under DATA/pods/<uid>/volumes/<name>:
//   emptyDir   a directory that lives as long as the pod
//   hostPath   the node's path (created for DirectoryOrCreate / FileOrCreate)
//   configMap, secret
//              the keys as files, written from the edge cache. Updates are atomic as in the
//              kubelet: the files live in a hidden `..<hash>` directory, the visible names are
//              symlinks through `..data`, and an update swaps `..data` with one rename, so a
//              container never reads half of an old and half of a new configuration.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "edgecore/pods/pod_spec.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::edge {

// Defence in depth (the API validates too): a configMap/secret key written as a file must be a
// Kubernetes config key (`[-._a-zA-Z0-9]+`, at most 253 characters, not `.`, `..` or starting
// with `..`, which would collide with the `..data` machinery), and an `items[].path` a relative
// path (at most 4096 bytes, names of at most 255) with no `.`, `..` or empty component and a first
// component not starting with `..`. A refused key or path names
// itself in the error (Code::kInvalidArgument) and nothing of that volume is written.
common::Status check_volume_key(std::string_view key);
common::Status check_volume_path(std::string_view path);

// Creates or refreshes every volume of `pod`. Idempotent; cheap when nothing changed. An error
// names the volume and what is missing (`configmap "app" not found`); volumes that could be set
// up are set up all the same. An unsafe key, path or volume name is Code::kInvalidArgument: the
// pod's containers then wait with CreateContainerConfigError, as for any other bad reference.
common::Status setup_volumes(const v1::Object& pod, const PodPaths& paths,
                             const ConfigLookup& lookup);

// Writes `files` (relative path -> content, mode) into `dir` atomically as described above. Every
// path is checked with check_volume_path, and no file is opened through a symlink or outside `dir`.
struct VolumeFile {
  std::string content;
  int mode = 0644;
};
common::Status write_atomic_dir(const std::filesystem::path& dir,
                                const std::map<std::string, VolumeFile>& files);

// Removes the pod's volume and log directories (not hostPath targets).
void remove_pod_dirs(const PodPaths& paths);

}  // namespace gantry::edge
