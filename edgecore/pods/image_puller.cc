#include "edgecore/pods/image_puller.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

namespace gantry::edge {

using std::chrono::steady_clock;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ImagePuller::ImagePuller(Runtime& runtime, ImagePullerOptions options)
    : runtime_(runtime), options_(std::move(options)) {
  size_t n = std::max<size_t>(1, options_.max_concurrent);
  for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { run(); });
}

ImagePuller::~ImagePuller() {
  stop();
}

void ImagePuller::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

uint64_t ImagePuller::pulls_started() const {
  std::lock_guard lock(mu_);
  return pulls_started_;
}

void ImagePuller::send(const Task& t) {
  if (!options_.report) return;
  v1::ImagePullReport r;
  r.set_job(t.job);
  r.set_job_uid(t.job_uid);
  *r.add_images() = t.result;
  options_.report(std::move(r));
}

void ImagePuller::submit(const v1::ImagePullRequest& request) {
  std::vector<Task> answers;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    auto jit = jobs_.find(request.job());
    if (jit != jobs_.end() && jit->second.uid != request.job_uid()) {
      // The job was deleted and created again under its name: forget the old one.
      for (const auto& image : jit->second.images) tasks_.erase({request.job(), image});
      std::erase_if(queue_, [&](const auto& k) { return k.first == request.job(); });
      jobs_.erase(jit);
      jit = jobs_.end();
    }
    if (jit == jobs_.end()) {
      // Bounded memory: the oldest jobs whose pulls are all done are forgotten first.
      while (jobs_.size() >= options_.max_jobs) {
        auto oldest = jobs_.end();
        for (auto it = jobs_.begin(); it != jobs_.end(); ++it)
          if (it->second.running == 0 &&
              (oldest == jobs_.end() || it->second.order < oldest->second.order))
            oldest = it;
        if (oldest == jobs_.end()) break;
        for (const auto& image : oldest->second.images) tasks_.erase({oldest->first, image});
        std::erase_if(queue_, [&](const auto& k) { return k.first == oldest->first; });
        jobs_.erase(oldest);
      }
      Job j;
      j.uid = request.job_uid();
      j.order = ++order_;
      jit = jobs_.emplace(request.job(), std::move(j)).first;
    }
    Job& job = jit->second;
    job.parallelism = std::max<uint32_t>(1, request.parallelism());
    for (const auto& image : request.images()) {
      auto key = std::make_pair(request.job(), image);
      auto t = tasks_.find(key);
      if (t != tasks_.end()) {
        answers.push_back(t->second);  // a repeated request: say where it is
        continue;
      }
      Task task;
      task.job = request.job();
      task.job_uid = request.job_uid();
      task.image = image;
      task.always = request.always();
      task.retries = request.retries();
      task.result.set_image(image);
      task.result.set_phase(v1::IMAGE_PULL_PHASE_QUEUED);
      job.images.push_back(image);
      tasks_[key] = task;
      queue_.push_back(key);
      answers.push_back(task);
    }
    // Under the lock, as every report: a job's reports leave in the order of its states.
    for (const auto& t : answers) send(t);
  }
  cv_.notify_all();
}

void ImagePuller::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_) return;
    // The first queued task that is due and whose job has room.
    auto now = steady_clock::now();
    std::optional<steady_clock::time_point> next_due;
    auto pick = queue_.end();
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      Task& t = tasks_.at(*it);
      Job& j = jobs_.at(it->first);
      if (j.running >= j.parallelism) continue;
      if (t.not_before > now) {
        if (!next_due || t.not_before < *next_due) next_due = t.not_before;
        continue;
      }
      pick = it;
      break;
    }
    if (pick == queue_.end()) {
      if (next_due)
        cv_.wait_until(lock, *next_due);
      else
        cv_.wait(lock);
      continue;
    }
    auto key = *pick;
    queue_.erase(pick);
    Task& task = tasks_.at(key);
    Job& job = jobs_.at(key.first);
    ++job.running;
    task.running = true;
    task.result.set_phase(v1::IMAGE_PULL_PHASE_PULLING);
    task.result.set_attempts(task.result.attempts() + 1);
    Task snapshot = task;
    ++pulls_started_;
    send(snapshot);
    lock.unlock();

    common::Result<std::string> ref = common::make_error(common::Code::kInternal, "not pulled");
    bool present = false;
    if (!snapshot.always) {
      auto st = runtime_.image_status(snapshot.image);
      if (st.ok() && *st) {
        present = true;
        ref = (*st)->id;
      }
    }
    auto started = steady_clock::now();
    if (!present) ref = runtime_.pull_image(snapshot.image);
    auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started);

    lock.lock();
    auto t = tasks_.find(key);
    auto jb = jobs_.find(key.first);
    if (jb != jobs_.end() && jb->second.running > 0) --jb->second.running;
    if (t == tasks_.end()) continue;  // the job was replaced meanwhile
    Task& done = t->second;
    done.running = false;
    if (ref.ok()) {
      done.result.set_phase(v1::IMAGE_PULL_PHASE_SUCCEEDED);
      done.result.set_image_id(*ref);
      done.result.set_message(present ? "already present on the node"
                                      : fmt::format("pulled in {} ms", took.count()));
      done.result.set_finished_at(unix_now());
      spdlog::info("image pull job {}: {} {}", done.job, done.image, done.result.message());
    } else if (done.result.attempts() <= done.retries && !stopping_) {
      // Back to the queue after a back-off (doubling from retry_base).
      auto delay = options_.retry_base * (1 << std::min<uint32_t>(done.result.attempts() - 1, 10));
      delay = std::min(delay, options_.retry_cap);
      done.not_before = steady_clock::now() + delay;
      done.result.set_phase(v1::IMAGE_PULL_PHASE_QUEUED);
      done.result.set_message(
          fmt::format("attempt {} failed: {}", done.result.attempts(), ref.status().message()));
      queue_.push_back(key);
      spdlog::warn("image pull job {}: {}: {}", done.job, done.image, done.result.message());
    } else {
      done.result.set_phase(v1::IMAGE_PULL_PHASE_FAILED);
      done.result.set_message(ref.status().message());
      done.result.set_finished_at(unix_now());
      spdlog::warn("image pull job {}: {} failed after {} attempts: {}", done.job, done.image,
                   done.result.attempts(), done.result.message());
    }
    send(done);
    cv_.notify_all();
  }
}

}  // namespace gantry::edge
