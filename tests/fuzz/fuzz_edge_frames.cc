// A fuzzed cloud against the edge's protocol state (EdgeSync over a real MetaStore and
// StatusTracker): any conversation (see frames.h for the input format) is applied or refused, and
// a refusal is what EdgeHub turns into closing the link. Ops: 0 a raw WebSocket message from the
// cloud, 1 the link drops and comes back (Hello), 2 the node reports a pod status (the bytes are
// the pod's name and phase), 3 the hub sends what the outbox holds. The cache is RocksDB in a
// fresh in-memory Env for every input (the real store code, no disk: thousands of inputs a second).
#include <rocksdb/env.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "edgecore/hub/edge_sync.h"
#include "edgecore/meta/meta_store.h"
#include "edgecore/status/status_tracker.h"
#include "gantry/v1/tunnel.pb.h"
#include "tests/fuzz/frames.h"

using namespace gantry;
using namespace gantry::edge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<rocksdb::Env> env(rocksdb::NewMemEnv(rocksdb::Env::Default()));
  {
    auto meta = MetaStore::open("/fuzz/meta", {.env = env.get()});
    if (!meta.ok()) __builtin_trap();
    auto tracker = StatusTracker::load(**meta, {.node_name = "edge-1"});
    if (!tracker.ok()) __builtin_trap();
    EdgeSync sync(**meta, **tracker, EdgeSyncOptions{.edgecore_version = "fuzz"});
    (void)sync.hello();
    uint64_t last_sequence = 0;

    fuzz::Records records(data, size);
    fuzz::Record record;
    while (records.next(&record)) {
      switch (record.op % 4) {
        case 0: {
          auto answer = sync.on_message(record.bytes);
          if (!answer.ok()) {
            if (answer.status().message().empty()) __builtin_trap();  // a close says why
            sync.on_disconnect();
            (void)sync.hello();  // EdgeHub reconnects
          }
          break;
        }
        case 1: {
          sync.on_disconnect();
          v1::Frame hello = sync.hello();
          if (hello.hello().applied_revision() != (*meta)->applied_revision()) __builtin_trap();
          break;
        }
        case 2: {
          std::string name(record.bytes.substr(0, 20));
          v1::PodStatus status;
          status.set_phase(static_cast<v1::PodPhase>(record.bytes.size() % 6));
          status.set_message(std::string(record.bytes));
          (void)(*tracker)->report_pod("default", name.empty() ? "p" : name, "uid-1", status);
          break;
        }
        case 3:
          while (auto batch = sync.next_status_batch()) {
            // Sequences only grow: the cloud drops a batch whose sequence it has seen.
            if (batch->status_delta().sequence() <= last_sequence) __builtin_trap();
            last_sequence = batch->status_delta().sequence();
          }
          break;
      }
    }
  }  // the store closes before its Env goes
  return 0;
}
