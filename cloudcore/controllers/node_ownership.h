// Node ownership with several cloudcore replicas: which replica holds a node's tunnel, as a
// lease-bound record per connected node,
//
//   /coordination/nodes/NODE = {"replica": NAME, "link": "HOST:PORT"}   bound to the replica's
//                                                                        ownership lease
//
// ("link": where the replica serves the replica link, cloudcore/hub/replica_link.h; absent when
// it serves none)
//
// written when a session attaches (the hub calls held()), deleted when it ends (released(), only
// if the record is still this replica's: the node may have moved on), and gone with the lease
// when the replica dies (at most ttl after its last renewal). A node that moves to another
// replica gets that replica's record (the last writer holds it). NodeLifecycle (on the leader)
// marks a node Ready=Unknown only once no record has existed for it for the node timeout.
//
// One thread per replica batches the writes (a reconnect storm is a few txns, not one per
// node) and renews the lease every ttl/3; a lost lease (the store unreachable for longer than
// the TTL) is replaced and every held node written again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "cloudcore/store/lease.h"
#include "cloudcore/store/store.h"
#include "common/base/clock.h"

namespace gantry::cloud::controllers {

inline constexpr std::string_view kNodeOwnershipPrefix = "/coordination/nodes/";
std::string node_ownership_key(std::string_view node);
// The replica named in a record's value ("" when it does not parse).
std::string node_owner(std::string_view value);
// The replica's link address in a record's value ("" when absent or when it does not parse).
std::string node_owner_link(std::string_view value);

struct NodeOwnershipOptions {
  std::string replica;  // this replica's name, written in the records
  std::string link;     // this replica's link address ("host:port"), written in the records
  std::chrono::seconds ttl{15};
  std::chrono::milliseconds renew_interval{0};  // 0: ttl / 3
  std::chrono::milliseconds retry_interval{1000};
  std::chrono::milliseconds tick{50};  // how often the thread looks for work
  // After the record of `node` is durable (on the ownership thread): the hub clears a
  // Ready=Unknown the leader may have written just before.
  std::function<void(const std::string& node)> on_recorded;
};

struct NodeOwnershipStats {
  uint64_t records_written = 0;
  uint64_t records_released = 0;
  uint64_t leases_granted = 0;
  uint64_t write_failures = 0;
};

class NodeOwnership {
 public:
  NodeOwnership(Leases& leases, Store& store, common::Clock& clock, NodeOwnershipOptions options);
  ~NodeOwnership();  // stop()
  NodeOwnership(const NodeOwnership&) = delete;
  NodeOwnership& operator=(const NodeOwnership&) = delete;

  // Thread-safe and cheap (queued): a session of `node` attached here / ended here.
  void held(const std::string& node);
  void released(const std::string& node);

  // The link address written in the records from now on (cloudcore knows it once the link
  // listens, after the hub, which needs this object, has started). Call before start().
  void set_link(std::string link);

  void start();
  // Stops the thread and revokes the lease: every record of this replica goes at once.
  void stop();
  // One round: renew, write what is pending. Tests call it instead of start().
  void step();

  size_t held_count() const;
  // The node's record is written (durable) by this replica.
  bool recorded(const std::string& node) const;
  NodeOwnershipStats stats() const;

 private:
  Leases& leases_;
  Store& store_;
  common::Clock& clock_;
  NodeOwnershipOptions options_;

  mutable std::mutex mu_;
  std::map<std::string, Revision> held_;  // node -> our record's mod revision (0: not written)
  std::set<std::string> to_write_;
  std::map<std::string, Revision> to_release_;  // node -> our record's revision to delete
  LeaseId lease_ = 0;
  std::chrono::steady_clock::time_point next_renew_{}, next_grant_{}, next_write_{};
  bool kicked_ = false;  // held(): write without waiting for the tick
  NodeOwnershipStats stats_;
  bool stopping_ = false;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace gantry::cloud::controllers
