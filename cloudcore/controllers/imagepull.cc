#include "cloudcore/controllers/imagepull.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "cloudcore/controllers/workloads_internal.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

constexpr const char* kProvinceLabel = "topology.gantry.io/province";

enum class NodePhase { kPending, kPulling, kSucceeded, kFailed };

const char* phase_name(NodePhase p, bool offline) {
  switch (p) {
    case NodePhase::kPending:
      return offline ? "WaitingOffline" : "Pending";
    case NodePhase::kPulling:
      return "Pulling";
    case NodePhase::kSucceeded:
      return "Succeeded";
    case NodePhase::kFailed:
      return "Failed";
  }
  return "Pending";
}

const char* image_phase_name(v1::ImagePullPhase p) {
  switch (p) {
    case v1::IMAGE_PULL_PHASE_QUEUED:
      return "Queued";
    case v1::IMAGE_PULL_PHASE_PULLING:
      return "Pulling";
    case v1::IMAGE_PULL_PHASE_SUCCEEDED:
      return "Succeeded";
    case v1::IMAGE_PULL_PHASE_FAILED:
      return "Failed";
    default:
      return "Pending";
  }
}

struct Spec {
  std::vector<std::string> images;
  json selector;  // null: every node
  std::set<std::string> node_names;
  int64_t per_province = 2;
  int64_t per_node = 1;
  int64_t retries = 2;
  int64_t deadline_s = 0;  // 0: none
  bool always = false;
};

Spec parse_spec(const json& obj) {
  Spec s;
  json spec = obj.value("spec", json::object());
  if (!spec.is_object()) return s;
  if (spec.contains("images") && spec["images"].is_array())
    for (const auto& i : spec["images"])
      if (i.is_string() && !i.get<std::string>().empty()) s.images.push_back(i.get<std::string>());
  if (spec.contains("selector") && spec["selector"].is_object() && !spec["selector"].empty())
    s.selector = spec["selector"];
  if (spec.contains("nodeNames") && spec["nodeNames"].is_array())
    for (const auto& n : spec["nodeNames"])
      if (n.is_string()) s.node_names.insert(n.get<std::string>());
  s.per_province =
      std::max<int64_t>(1, common::json_int_at(spec, {"parallelism", "perProvince"}, 2));
  s.per_node = std::max<int64_t>(1, common::json_int_at(spec, {"parallelism", "perNode"}, 1));
  s.retries = std::max<int64_t>(0, common::json_int_at(spec, {"retries"}, 2));
  s.deadline_s = std::max<int64_t>(0, common::json_int_at(spec, {"activeDeadlineSeconds"}, 0));
  s.always = spec.value("pullPolicy", json("")) == "Always";
  return s;
}

bool selects(const Spec& s, const std::string& node, const std::map<std::string, std::string>& l) {
  if (!s.node_names.empty() && !s.node_names.count(node)) return false;
  if (s.selector.is_null()) return true;
  return selector_matches(s.selector, l);
}

struct NodeProgress {
  NodePhase phase = NodePhase::kPending;
  std::string province;
  std::map<std::string, v1::ImagePullResult> images;  // by image
  ControllerClock::TimePoint sent_at{};
  std::string message;
};

struct JobState {
  std::string key, ns, name, uid;
  Revision mod_revision = 0;
  json obj;
  Spec spec;
  std::map<std::string, NodeProgress> nodes;
  int64_t start_ms = 0;
  int64_t completion_ms = 0;
  bool finished = false;
  bool refused = false;  // ended by ImagePullOptions::refuse_message
  bool dirty = true;
  ControllerClock::TimePoint last_write{};
};

NodePhase phase_of(const Spec& spec, const NodeProgress& n) {
  bool all_ok = true, all_final = true;
  for (const auto& image : spec.images) {
    auto it = n.images.find(image);
    v1::ImagePullPhase p =
        it == n.images.end() ? v1::IMAGE_PULL_PHASE_UNSPECIFIED : it->second.phase();
    if (p != v1::IMAGE_PULL_PHASE_SUCCEEDED) all_ok = false;
    if (p != v1::IMAGE_PULL_PHASE_SUCCEEDED && p != v1::IMAGE_PULL_PHASE_FAILED) all_final = false;
  }
  if (all_ok) return NodePhase::kSucceeded;
  if (all_final) return NodePhase::kFailed;
  return NodePhase::kPulling;
}

}  // namespace

struct ImagePullController::Impl {
  Store& store;
  PullTransport& transport;
  ImagePullOptions options;
  const ControllerClock& clock;
  ImagePullStats stats;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool kicked = false;
  std::map<std::string, JobState> jobs;                                   // by store key
  std::map<std::string, std::map<std::string, std::string>> node_labels;  // by node name
  std::unique_ptr<Informer> informer;
  std::thread worker;

  Impl(Store& s, PullTransport& t, ImagePullOptions o)
      : store(s), transport(t), options(o), clock(o.clock ? *o.clock : system_clock()) {}

  void on_changes(const std::vector<Change>& changes, bool /*resync*/) {
    std::lock_guard lock(mu);
    for (const auto& c : changes) {
      if (c.key.rfind(keys::kNodes, 0) == 0) {
        std::string name = c.key.substr(keys::kNodes.size());
        if (!c.kv) {
          node_labels.erase(name);
          continue;
        }
        auto text = stored_json(c.kv->value);
        json obj = text ? json::parse(*text, nullptr, false) : json();
        if (!obj.is_object()) continue;
        node_labels[name] = obj.contains("metadata") && obj["metadata"].contains("labels")
                                ? string_map(obj["metadata"]["labels"])
                                : std::map<std::string, std::string>{};
        continue;
      }
      if (!c.kv) {
        jobs.erase(c.key);
        continue;
      }
      auto text = stored_json(c.kv->value);
      json obj = text ? json::parse(*text, nullptr, false) : json();
      if (!obj.is_object()) continue;
      std::string uid = common::json_string_at(obj, {"metadata", "uid"});
      auto it = jobs.find(c.key);
      if (it != jobs.end() && it->second.uid == uid) {
        JobState& j = it->second;
        Spec spec = parse_spec(obj);
        if (spec.images != j.spec.images) {  // a new set of images: start over
          j.nodes.clear();
          j.finished = false;
          j.completion_ms = 0;
          j.dirty = true;
        }
        j.spec = std::move(spec);
        j.obj = std::move(obj);
        j.mod_revision = c.kv->mod_revision;
        continue;
      }
      JobState j;
      j.key = c.key;
      j.uid = uid;
      j.ns = common::json_string_at(obj, {"metadata", "namespace"});
      j.name = common::json_string_at(obj, {"metadata", "name"});
      j.spec = parse_spec(obj);
      j.mod_revision = c.kv->mod_revision;
      j.start_ms = parse_rfc3339_ms(common::json_string_at(obj, {"status", "startTime"}))
                       .value_or(parse_rfc3339_ms(
                                     common::json_string_at(obj, {"metadata", "creationTimestamp"}))
                                     .value_or(clock.unix_ms()));
      // After a cloudcore restart: what the status already says is done stays done.
      if (obj.contains("status") && obj["status"].contains("nodes") &&
          obj["status"]["nodes"].is_array()) {
        for (const auto& n : obj["status"]["nodes"]) {
          if (!n.is_object() || !n.contains("images") || !n["images"].is_array()) continue;
          NodeProgress p;
          p.province = n.value("province", "");
          for (const auto& i : n["images"]) {
            if (!i.is_object()) continue;
            std::string ph = i.value("phase", "");
            if (ph != "Succeeded" && ph != "Failed") continue;
            v1::ImagePullResult r;
            r.set_image(i.value("image", ""));
            r.set_phase(ph == "Succeeded" ? v1::IMAGE_PULL_PHASE_SUCCEEDED
                                          : v1::IMAGE_PULL_PHASE_FAILED);
            r.set_image_id(i.value("imageID", ""));
            r.set_message(i.value("message", ""));
            r.set_attempts(static_cast<uint32_t>(i.value("attempts", 0)));
            p.images[r.image()] = r;
          }
          p.phase = phase_of(j.spec, p);
          if (p.phase == NodePhase::kPulling) p.phase = NodePhase::kPending;  // ask again
          j.nodes[n.value("name", "")] = std::move(p);
        }
      }
      j.obj = std::move(obj);
      jobs[c.key] = std::move(j);
    }
    kicked = true;
    cv.notify_all();
  }

  // One pass over a job (mu held): new target nodes, deadline, lost nodes, new requests.
  void reconcile(JobState& j, std::vector<std::pair<std::string, v1::ImagePullRequest>>& sends) {
    if (j.finished) return;
    auto now = clock.now();
    int64_t now_ms = clock.unix_ms();
    if (!options.refuse_message.empty()) {
      std::string phase = common::json_string_at(j.obj, {"status", "phase"});
      if (phase == "Succeeded" || phase == "Failed") {  // ended before: left as it is
        j.finished = true;
        j.dirty = false;
        return;
      }
      j.nodes.clear();
      j.finished = true;
      j.refused = true;
      j.completion_ms = now_ms;
      j.dirty = true;
      return;
    }
    for (const auto& [name, labels] : node_labels) {
      if (!selects(j.spec, name, labels) || j.nodes.count(name)) continue;
      NodeProgress p;
      auto pr = labels.find(kProvinceLabel);
      p.province = pr == labels.end() ? "" : pr->second;
      j.nodes.emplace(name, std::move(p));
      j.dirty = true;
    }
    // Nodes deleted before they pulled are no longer waited for.
    for (auto it = j.nodes.begin(); it != j.nodes.end();) {
      bool gone = !node_labels.count(it->first) && (it->second.phase == NodePhase::kPending ||
                                                    it->second.phase == NodePhase::kPulling);
      if (gone) j.dirty = true;
      it = gone ? j.nodes.erase(it) : std::next(it);
    }
    bool expired = j.spec.deadline_s > 0 && now_ms - j.start_ms >= j.spec.deadline_s * 1000;
    std::map<std::string, int64_t> pulling;  // by province
    for (auto& [name, n] : j.nodes) {
      if (n.phase != NodePhase::kPulling) continue;
      if (!transport.connected(name)) {
        n.phase = NodePhase::kPending;  // asked again when it returns
        j.dirty = true;
        continue;
      }
      ++pulling[n.province];
    }
    if (expired) {
      for (auto& [name, n] : j.nodes) {
        if (n.phase == NodePhase::kSucceeded || n.phase == NodePhase::kFailed) continue;
        n.phase = NodePhase::kFailed;
        n.message = fmt::format("DeadlineExceeded: not done after activeDeadlineSeconds ({} s)",
                                j.spec.deadline_s);
      }
      j.finished = true;
      j.completion_ms = now_ms;
      j.dirty = true;
      return;
    }
    auto request = [&] {
      v1::ImagePullRequest r;
      r.set_job(j.ns + "/" + j.name);
      r.set_job_uid(j.uid);
      for (const auto& i : j.spec.images) r.add_images(i);
      r.set_parallelism(static_cast<uint32_t>(j.spec.per_node));
      r.set_retries(static_cast<uint32_t>(j.spec.retries));
      r.set_always(j.spec.always);
      return r;
    };
    for (auto& [name, n] : j.nodes) {
      if (n.phase == NodePhase::kPulling && now - n.sent_at >= options.resend_after) {
        n.sent_at = now;  // taken but not reported on: ask again (the edge dedups)
        sends.emplace_back(name, request());
      }
    }
    for (auto& [name, n] : j.nodes) {
      if (n.phase != NodePhase::kPending) continue;
      if (pulling[n.province] >= j.spec.per_province) continue;
      if (!transport.connected(name)) continue;
      n.phase = NodePhase::kPulling;
      n.sent_at = now;
      ++pulling[n.province];
      sends.emplace_back(name, request());
      j.dirty = true;
    }
    bool all_final = true;
    for (const auto& [name, n] : j.nodes)
      if (n.phase != NodePhase::kSucceeded && n.phase != NodePhase::kFailed) all_final = false;
    if (all_final && !j.spec.images.empty()) {
      j.finished = true;
      j.completion_ms = now_ms;
      j.dirty = true;
    }
  }

  json status_of(const JobState& j) {
    int64_t counts[5] = {0, 0, 0, 0, 0};  // pending, waitingOffline, pulling, succeeded, failed
    json nodes = json::array();
    size_t listed = 0;
    bool all_listed = j.nodes.size() <= options.max_status_nodes;
    for (const auto& [name, n] : j.nodes) {
      bool offline = n.phase == NodePhase::kPending && !transport.connected(name);
      switch (n.phase) {
        case NodePhase::kPending:
          ++counts[offline ? 1 : 0];
          break;
        case NodePhase::kPulling:
          ++counts[2];
          break;
        case NodePhase::kSucceeded:
          ++counts[3];
          break;
        case NodePhase::kFailed:
          ++counts[4];
          break;
      }
      if (!all_listed && (n.phase == NodePhase::kSucceeded || listed >= options.max_status_nodes))
        continue;
      ++listed;
      json e = {{"name", name}, {"phase", phase_name(n.phase, offline)}};
      if (!n.province.empty()) e["province"] = n.province;
      if (!n.message.empty()) e["message"] = n.message;
      json images = json::array();
      for (const auto& image : j.spec.images) {
        json ie = {{"image", image}, {"phase", "Pending"}};
        if (auto it = n.images.find(image); it != n.images.end()) {
          const auto& r = it->second;
          ie["phase"] = image_phase_name(r.phase());
          if (!r.image_id().empty()) ie["imageID"] = r.image_id();
          if (!r.message().empty()) ie["message"] = r.message();
          if (r.attempts() > 0) ie["attempts"] = r.attempts();
        }
        images.push_back(std::move(ie));
      }
      e["images"] = std::move(images);
      nodes.push_back(std::move(e));
    }
    json old = j.obj.value("status", json::object());
    json st = old.is_object() ? old : json::object();
    st["desired"] = static_cast<int64_t>(j.nodes.size());
    st["pending"] = counts[0];
    st["waitingOffline"] = counts[1];
    st["pulling"] = counts[2];
    st["succeeded"] = counts[3];
    st["failed"] = counts[4];
    st["nodes"] = std::move(nodes);
    st["startTime"] = rfc3339_ms(j.start_ms);
    int64_t now_ms = clock.unix_ms();
    if (j.refused) {
      st["completionTime"] = rfc3339_ms(j.completion_ms);
      st["phase"] = "Failed";
      set_condition(st, "Complete", "False", "NotSupported", options.refuse_message, now_ms);
      set_condition(st, "Failed", "True", "NotSupported", options.refuse_message, now_ms);
    } else if (j.finished) {
      st["completionTime"] = rfc3339_ms(j.completion_ms);
      bool failed = counts[4] > 0;
      st["phase"] = failed ? "Failed" : "Succeeded";
      set_condition(st, "Complete", failed ? "False" : "True", failed ? "NodesFailed" : "AllPulled",
                    fmt::format("{} of {} nodes have the images", counts[3], j.nodes.size()),
                    now_ms);
      if (failed)
        set_condition(
            st, "Failed", "True", "NodesFailed",
            fmt::format("{} of {} nodes could not pull the images", counts[4], j.nodes.size()),
            now_ms);
    } else {
      st.erase("completionTime");
      st["phase"] = "Running";
    }
    return st;
  }

  void run() {
    std::unique_lock lock(mu);
    while (!stopping) {
      cv.wait_for(lock, options.tick, [&] { return stopping || kicked; });
      if (stopping) return;
      kicked = false;
      std::vector<std::pair<std::string, v1::ImagePullRequest>> sends;
      std::vector<std::tuple<std::string, Revision, json>> writes;  // key, expect, object
      auto now = clock.now();
      for (auto& [key, j] : jobs) {
        reconcile(j, sends);
        if (!j.dirty || now - j.last_write < options.status_interval) continue;
        json st = status_of(j);
        if (j.obj.contains("status") && j.obj["status"] == st) {
          j.dirty = false;
          continue;
        }
        json obj = j.obj;
        obj["status"] = std::move(st);
        writes.emplace_back(key, j.mod_revision, std::move(obj));
        j.last_write = now;
        j.dirty = false;  // a report from now on makes it dirty again
      }
      lock.unlock();
      for (auto& [node, req] : sends)
        if (transport.send(node, req)) ++stats.requests_sent;
      std::vector<std::tuple<std::string, Revision, json>> written;
      std::vector<std::string> failed;
      for (auto& [key, expect, obj] : writes) {
        v1::StoredObject so;
        so.set_json(obj.dump());
        if (obj["metadata"].contains("labels"))
          for (const auto& [k, v] : string_map(obj["metadata"]["labels"]))
            (*so.mutable_labels())[k] = v;
        auto r = store.txn({Op::put(key, so.SerializeAsString(), expect)});
        if (!r.ok()) {
          if (r.status().code() == common::Code::kFailedPrecondition) ++stats.conflicts;
          failed.push_back(key);  // the next pass writes it over the newer object
          continue;
        }
        ++stats.status_writes;
        written.emplace_back(key, r->revision, std::move(obj));
      }
      lock.lock();
      for (auto& [key, rev, obj] : written) {
        auto it = jobs.find(key);
        if (it == jobs.end() || it->second.mod_revision >= rev) continue;
        it->second.mod_revision = rev;
        it->second.obj = std::move(obj);
      }
      for (const auto& key : failed)
        if (auto it = jobs.find(key); it != jobs.end()) it->second.dirty = true;
    }
  }
};

common::Result<std::unique_ptr<ImagePullController>> ImagePullController::start(
    Store& store, PullTransport& transport, ImagePullOptions options) {
  auto impl = std::make_unique<Impl>(store, transport, options);
  InformerOptions io;
  io.prefixes = {std::string(kImagePullJobsPrefix), std::string(keys::kNodes)};
  Impl* raw = impl.get();
  auto informer = Informer::start(
      store, io, [raw](const std::vector<Change>& c, bool resync) { raw->on_changes(c, resync); });
  if (!informer.ok()) return informer.status();
  impl->informer = std::move(informer).value();
  impl->worker = std::thread([raw] { raw->run(); });
  return std::unique_ptr<ImagePullController>(new ImagePullController(std::move(impl)));
}

ImagePullController::ImagePullController(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ImagePullController::~ImagePullController() {
  stop();
}

void ImagePullController::stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->informer) impl_->informer->stop();
  if (impl_->worker.joinable()) impl_->worker.join();
}

void ImagePullController::wake() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->kicked = true;
  }
  impl_->cv.notify_all();
}

const ImagePullStats& ImagePullController::stats() const {
  return impl_->stats;
}

void ImagePullController::on_report(const std::string& node, const v1::ImagePullReport& report) {
  ++impl_->stats.reports;
  std::lock_guard lock(impl_->mu);
  auto slash = report.job().find('/');
  if (slash == std::string::npos) return;
  std::string key = std::string(kImagePullJobsPrefix) + report.job();
  auto it = impl_->jobs.find(key);
  if (it == impl_->jobs.end() || it->second.uid != report.job_uid()) return;
  JobState& j = it->second;
  auto n = j.nodes.find(node);
  if (n == j.nodes.end() || j.finished) return;
  for (const auto& r : report.images()) n->second.images[r.image()] = r;
  NodePhase p = phase_of(j.spec, n->second);
  if (p != NodePhase::kPulling || n->second.phase == NodePhase::kPulling) n->second.phase = p;
  j.dirty = true;
  impl_->kicked = true;
  impl_->cv.notify_all();
}

}  // namespace gantry::cloud::controllers
