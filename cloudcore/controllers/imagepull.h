// The ImagePullJob controller (gantry.io/v1, namespaced): "have these images on these nodes".
//
// It follows the jobs and the nodes through one informer, and on one worker thread sends pull
// requests to the nodes the job selects, over the tunnel (through a PullTransport: the hub), with
// at most `spec.parallelism.perProvince` nodes of one province pulling at once (provinces hang
// on 3 Mbit/s links), `spec.parallelism.perNode` images at once on a node (the edge bounds its
// own total too). A node that is not connected waits (`waitingOffline`) and gets its request
// when it returns; a node that disconnects while pulling is asked again when it returns (the
// edge answers a repeated request with where it is). The edge retries a failed pull
// `spec.retries` times; the job fails the nodes still unfinished at `spec.activeDeadlineSeconds`.
// Progress comes back as ImagePullReports (on_report) and is written to the job's status at most
// once per `status_interval`: counts, and per node its phase and per-image results.
// docs/workloads.md, "Pre-pulling images".
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "cloudcore/controllers/informer.h"
#include "cloudcore/store/store.h"
#include "common/base/status.h"
#include "gantry/v1/image_pull.pb.h"

namespace gantry::cloud::controllers {

inline constexpr std::string_view kImagePullJobsPrefix = "/imagepulljobs/";

// How the controller reaches nodes (the hub in cloudcore; a fake in tests). Thread-safe.
class PullTransport {
 public:
  virtual ~PullTransport() = default;
  virtual bool connected(const std::string& node) const = 0;
  // Queues the request on the node's connection; false when the node is not connected.
  virtual bool send(const std::string& node, const v1::ImagePullRequest& request) = 0;
};

struct ImagePullOptions {
  const ControllerClock* clock = nullptr;  // nullptr: system_clock()
  // How often the worker looks at the jobs without being woken (nodes coming back, deadlines).
  std::chrono::milliseconds tick{std::chrono::milliseconds(500)};
  // Status writes per job at most this often.
  std::chrono::milliseconds status_interval{std::chrono::seconds(1)};
  // A request a node took but never reported on is sent again after this long.
  std::chrono::milliseconds resend_after{std::chrono::minutes(2)};
  // Nodes listed one by one in status.nodes (beyond it: the ones not yet succeeded, up to it).
  size_t max_status_nodes = 1000;
  // Set: no pulls; every job not finished yet ends Failed with this message (reason
  // NotSupported). cloudcore with several replicas runs it so on the leader: a node's tunnel may
  // be held by another replica (docs/workloads.md, "Pre-pulling images").
  std::string refuse_message;
};

struct ImagePullStats {
  std::atomic<uint64_t> requests_sent{0};
  std::atomic<uint64_t> reports{0};
  std::atomic<uint64_t> status_writes{0};
  std::atomic<uint64_t> conflicts{0};
};

class ImagePullController {
 public:
  static common::Result<std::unique_ptr<ImagePullController>> start(Store& store,
                                                                    PullTransport& transport,
                                                                    ImagePullOptions options = {});
  ~ImagePullController();
  ImagePullController(const ImagePullController&) = delete;
  ImagePullController& operator=(const ImagePullController&) = delete;

  // A node's progress report (the hub calls it on the node's session thread).
  void on_report(const std::string& node, const v1::ImagePullReport& report);
  // Wakes the worker (a node connected; a test moved the clock).
  void wake();
  void stop();  // idempotent
  const ImagePullStats& stats() const;

  struct Impl;

 private:
  explicit ImagePullController(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::cloud::controllers
