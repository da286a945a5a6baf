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
                                                      "meta"};

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
};

// Refuses (kFailedPrecondition) a directory holding none of kEdgeEntries (a typo must not wipe an
// unrelated directory) and a cloudcore data dir (it holds the CA key). Stops the edgecore named by
// DIR/edgecore.pid first, if that process is an edgecore.
common::Result<ResetReport> reset(const ResetOptions& options);

}  // namespace gantry::adm
