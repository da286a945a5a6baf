// Background image pulls the cloud asks for (ImagePullJob): a bounded pool of pullers, apart from
// the pod workers, so that warming a node for an announced upgrade never delays its pods.
//
// A request names a job and its images. Each (job, image) is pulled once: a repeated request
// (after a reconnect) is answered with where that pull is, never a second pull. At most
// `max_concurrent` pulls run on the node at once, and at most the request's `parallelism` of one
// job. A failed pull is retried `retries` times with back-off. Every change of an image's state
// (queued, pulling, succeeded with its image ID, failed with the runtime's message and the attempt
// count) is reported through `report`, one ImagePullReport per change.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "edgecore/runtime/runtime.h"
#include "gantry/v1/image_pull.pb.h"

namespace gantry::edge {

struct ImagePullerOptions {
  size_t max_concurrent = 2;
  std::chrono::milliseconds retry_base{std::chrono::seconds(5)};
  std::chrono::milliseconds retry_cap{std::chrono::minutes(2)};
  // Results kept for answering repeated requests (oldest finished jobs go first).
  size_t max_jobs = 64;
  // Gets each change, in order, with the puller's lock held (on a puller thread, or the caller's
  // for a repeated request): must be quick and must not call the puller (edgecore queues it on
  // the tunnel).
  std::function<void(v1::ImagePullReport)> report;
};

class ImagePuller {
 public:
  ImagePuller(Runtime& runtime, ImagePullerOptions options);
  ~ImagePuller();  // stops (see stop())
  ImagePuller(const ImagePuller&) = delete;
  ImagePuller& operator=(const ImagePuller&) = delete;

  void submit(const v1::ImagePullRequest& request);
  // Ends the pullers; a pull in flight ends with the runtime's cancellation. Idempotent.
  void stop();

  // How many pulls ran (for tests and metrics).
  uint64_t pulls_started() const;

 private:
  struct Task {
    std::string job, job_uid, image;
    bool always = false;
    uint32_t retries = 0;
    v1::ImagePullResult result;
    std::chrono::steady_clock::time_point not_before{};
    bool running = false;
  };
  struct Job {
    std::string uid;
    uint32_t parallelism = 1;
    size_t running = 0;
    std::vector<std::string> images;
    uint64_t order = 0;
  };
  void run();
  void send(const Task& t);

  Runtime& runtime_;
  ImagePullerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, Job> jobs_;                            // by job ("ns/name")
  std::map<std::pair<std::string, std::string>, Task> tasks_;  // (job, image)
  std::deque<std::pair<std::string, std::string>> queue_;      // (job, image) waiting
  uint64_t order_ = 0;
  uint64_t pulls_started_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace gantry::edge
