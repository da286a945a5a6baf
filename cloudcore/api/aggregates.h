// Fleet aggregates for the dashboard and other tools (docs/api.md, "Fleet aggregates"): an
// indexed in-memory view of every node (province, labels, readiness, edgecore version, pods by
// phase) fed by one store watch, with per-province counters kept up to date on each change, so
// that a national summary is O(provinces), a province breakdown by a label O(nodes of the
// province) and no request lists the store. Live: subscribers hear which provinces changed,
// coalesced.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cloudcore/store/store.h"
#include "common/base/status.h"

namespace gantry::cloud::api {

enum class NodeState { kReady, kNotReady, kUnknown };
const char* node_state_name(NodeState s);

inline constexpr size_t kPhaseCount = 5;  // Pending Running Succeeded Failed Unknown
const char* phase_label(size_t index);

// Counts over a set of nodes (a province, or the nodes of a province with one label value).
struct FleetCounts {
  int64_t nodes = 0, ready = 0, not_ready = 0, unknown = 0;
  int64_t pods = 0;
  std::array<int64_t, kPhaseCount> phases{};
  std::map<std::string, int64_t> versions;  // edgecore version -> nodes ("" when not reported)
  int64_t last_change_ms = 0;               // the newest status change seen

  nlohmann::json to_json() const;
};

// One row of the node table.
struct FleetNodeRow {
  std::string name;
  std::string province;
  std::map<std::string, std::string> labels;
  NodeState state = NodeState::kUnknown;
  std::string reason;          // why Unknown/NotReady ("NodeStatusNeverUpdated", ...)
  int64_t last_seen_ms = 0;    // see docs/api.md
  int64_t last_change_ms = 0;  // the last status change applied
  int64_t unreachable_since_ms = 0;
  std::string version;
  int64_t pods = 0;
  std::array<int64_t, kPhaseCount> phases{};

  nlohmann::json to_json() const;
};

struct NodeQuery {
  std::optional<std::set<std::string>> provinces;  // unset: every province
  std::set<NodeState> states;                      // empty: any
  std::string name_contains;
  std::function<bool(const std::map<std::string, std::string>&)> labels;  // unset: any
  std::string sort_by = "name";  // name | state | lastSeen | pods | version | province
  bool descending = false;
  size_t offset = 0;
  size_t limit = 50;
};

struct NodePage {
  uint64_t total = 0;  // rows matching, before paging
  std::vector<FleetNodeRow> items;
  Revision revision = 0;
};

class FleetIndex {
 public:
  struct Options {
    // Changes are told to subscribers at most this often (coalesced per province).
    std::chrono::milliseconds publish_interval{1000};
    // With no change, subscribers are called with an empty set this often.
    std::chrono::milliseconds heartbeat_interval{10'000};
  };

  // Loads nodes, pods and their statuses at the store's current revision and follows it.
  static common::Result<std::unique_ptr<FleetIndex>> start(Store& store, Options options);
  static common::Result<std::unique_ptr<FleetIndex>> start(Store& store) {
    return start(store, Options{});
  }
  ~FleetIndex();
  FleetIndex(const FleetIndex&) = delete;
  FleetIndex& operator=(const FleetIndex&) = delete;

  Revision revision() const;
  std::vector<std::string> provinces() const;
  std::optional<FleetCounts> province(const std::string& name) const;
  // The province's nodes grouped by the value of `label` ("" key: nodes without it).
  std::map<std::string, FleetCounts> breakdown(const std::string& province,
                                               const std::string& label) const;
  // The label keys set on the province's nodes, with how many nodes carry each.
  std::map<std::string, int64_t> label_keys(const std::string& province) const;
  NodePage nodes(const NodeQuery& query) const;
  std::optional<FleetNodeRow> node(const std::string& name) const;

  class [[nodiscard]] Subscription {
   public:
    virtual ~Subscription() = default;
  };
  // `fn` runs on the index's publisher thread with the provinces that changed since the last
  // call (and the index revision then), at most once per publish_interval, or with none after
  // heartbeat_interval without a change. It may call back into the index. Destroying the handle
  // stops the calls (waits for one in progress).
  using ChangeFn = std::function<void(const std::set<std::string>& provinces, Revision revision)>;
  std::unique_ptr<Subscription> subscribe(ChangeFn fn);

  struct Impl;

 private:
  explicit FleetIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::cloud::api
