// A fuzzed edge against the cloud's per-node protocol state: the frames a node may send (Hello,
// ObjectAck, StatusDelta; see frames.h for the input format) go through what cloudcore's hub does
// with them, without the sockets: the Hello's resume from the registry (NodeDispatch), acks, and
// plan_status_delta against the statuses stored so far. A plan either breaks the protocol and
// writes nothing, or is committed. Ops: 0 a raw WebSocket message, 1 the node reconnects.
#include <fmt/format.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "cloudcore/hub/dispatch.h"
#include "cloudcore/hub/upstream.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/rocks_store.h"
#include "gantry/v1/tunnel.pb.h"
#include "tests/fuzz/frames.h"

using namespace gantry;
using namespace gantry::cloud;

namespace {

struct NoListener : NodeListener {
  void on_node_changes(const NodeChanges&) override {}
};

std::unique_ptr<Store> g_store;
std::unique_ptr<Registry> g_registry;

// Two nodes with a pod each, a configmap, and a deleted pod: a resume has something to send.
void setup() {
  const char* shm = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
  auto dir = std::filesystem::path(shm) / fmt::format("gantry-fuzz-cloud-{}", ::getpid());
  std::filesystem::remove_all(dir);
  RocksStoreOptions options;
  options.path = dir.string();
  g_store = std::move(open_rocks_store(options)).value();
  for (auto [pod, node] : {std::pair{"web", "n1"}, std::pair{"db", "n2"}, std::pair{"old", "n1"}}) {
    auto obj = decode_object(v1::OBJECT_KIND_POD,
                             fmt::format(R"({{"metadata": {{"name": "{}", "uid": "uid-{}"}},
                               "spec": {{"nodeName": "{}", "containers": [{{"name": "c", "image": "i"}}]}}}})",
                                         pod, pod, node));
    (void)g_store->put(keys::object_key(v1::OBJECT_KIND_POD, "default", pod),
                       obj->SerializeAsString());
  }
  (void)g_store->remove(keys::object_key(v1::OBJECT_KIND_POD, "default", "old"));
  g_registry = std::move(Registry::start(*g_store)).value();
  std::atexit([] {
    g_registry.reset();
    g_store.reset();
  });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setup();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, v1::StoredStatus> stored;
  StatusLookup lookup = [&](const std::string& key) -> std::optional<v1::StoredStatus> {
    auto it = stored.find(key);
    if (it == stored.end()) return std::nullopt;
    return it->second;
  };
  uint64_t stored_sequence = 0;
  NoListener listener;
  NodeDispatch dispatch(64 * 1024);
  bool hello_seen = false;
  int64_t now_ms = 1'700'000'000'000;

  fuzz::Records records(data, size);
  fuzz::Record record;
  while (records.next(&record)) {
    now_ms += 1000;
    if (record.op % 2 == 1) {  // reconnect
      hello_seen = false;
      dispatch = NodeDispatch(64 * 1024);
      continue;
    }
    v1::Frame frame;
    if (!frame.ParseFromArray(record.bytes.data(), static_cast<int>(record.bytes.size()))) {
      continue;  // the hub closes the connection: nothing changed
    }
    if (!hello_seen && frame.msg_case() != v1::Frame::kHello) continue;
    switch (frame.msg_case()) {
      case v1::Frame::kHello: {
        if (hello_seen) continue;
        hello_seen = true;
        auto [resume, subscription] =
            g_registry->subscribe("n1", frame.hello().applied_revision(), &listener);
        for (const auto& out : dispatch.resume(resume)) {
          if (out.ByteSizeLong() > 64 * 1024 + 1024) __builtin_trap();  // frames stay bounded
        }
        break;
      }
      case v1::Frame::kObjectAck:
        (void)dispatch.on_ack(frame.object_ack().revision());
        if (dispatch.acked() > dispatch.sent()) __builtin_trap();  // acks past what was sent
        break;
      case v1::Frame::kStatusDelta: {
        auto plan = plan_status_delta("n1", frame.status_delta(), stored_sequence, *g_registry,
                                      lookup, now_ms);
        if (!plan.violation.ok()) {
          if (!plan.writes.empty()) __builtin_trap();  // a refused batch writes nothing
          continue;                                    // and the hub closes the connection
        }
        for (const auto& [key, value] : plan.writes) {
          if (value) {
            if (!stored[key].ParseFromString(*value)) __builtin_trap();  // we wrote garbage
          } else {
            stored.erase(key);
          }
        }
        if (!plan.duplicate) stored_sequence = plan.ack.sequence();
        break;
      }
      default:
        break;  // frames an edge may not send: the hub closes the connection
    }
  }
  return 0;
}
