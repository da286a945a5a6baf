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

#include "common/base/status.h"
#include "edgecore/pods/pod_spec.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::edge {

// Creates or refreshes every volume of `pod`. Idempotent; cheap when nothing changed. An error
// names the volume and what is missing (`configmap "app" not found`); volumes that could be set
// up are set up all the same.
common::Status setup_volumes(const v1::Object& pod, const PodPaths& paths,
                             const ConfigLookup& lookup);

// Writes `files` (relative path -> content, mode) into `dir` atomically as described above.
struct VolumeFile {
  std::string content;
  int mode = 0644;
};
common::Status write_atomic_dir(const std::filesystem::path& dir,
                                const std::map<std::string, VolumeFile>& files);

// Removes the pod's volume and log directories (not hostPath targets).
void remove_pod_dirs(const PodPaths& paths);

}  // namespace gantry::edge
