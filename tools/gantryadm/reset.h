// `gantryadm reset`: undoes what join and edgecore made in an edge data dir.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace gantry::adm {

// What join and edgecore create in an edge data dir: reset removes these and nothing else.
inline const std::vector<std::string> kEdgeEntries = {"edgecore.yaml", "edgecore.pid", "pki",
                                                      "meta",          "pods",         "logs"};

struct ResetOptions {
  std::filesystem::path data_dir;
  std::chrono::milliseconds stop_timeout{std::chrono::seconds(15)};  // SIGTERM, then SIGKILL
};

struct ResetReport {
  bool dir_missing = false;           // nothing to do
  int stopped_pid = 0;                // the edgecore stopped via edgecore.pid, 0 if none
  bool killed = false;                // it ignored SIGTERM for stop_timeout
  std::vector<std::string> removed;   // entries of kEdgeEntries that were there
  std::vector<std::string> left;      // other entries, left alone
  std::vector<std::string> warnings;  // e.g. a pid file naming a process that is not edgecore
  // Pods edgecore started (sandboxes labelled gantry.io/managed-by=edgecore) stopped and removed
  // from the runtime named in edgecore.yaml; containers of other software are never touched.
  int pods_removed = 0;
  std::string runtime_endpoint;
};

// Refuses (kFailedPrecondition) a directory holding none of kEdgeEntries (a typo must not wipe an
// unrelated directory) and a cloudcore data dir (it holds the CA key). Stops the edgecore named by
// DIR/edgecore.pid first, if that process is an edgecore, then removes the pods it ran (through
// the runtime endpoint of DIR/edgecore.yaml; a runtime that does not answer is a warning).
common::Result<ResetReport> reset(const ResetOptions& options);

}  // namespace gantry::adm
