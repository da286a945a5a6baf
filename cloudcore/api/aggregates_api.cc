#include "cloudcore/api/aggregates_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "cloudcore/api/selectors.h"

namespace gantry::cloud::api {

using common::Request;
using common::Response;
using nlohmann::json;

namespace {

constexpr std::string_view kSummaries = "/apis/gantry.io/v1/fleetsummaries";
constexpr std::string_view kNodes = "/apis/gantry.io/v1/fleetnodes";
constexpr size_t kMaxLimit = 500;

Response status_response(int code, const std::string& reason, const std::string& message,
                         json details = nullptr) {
  json out = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
              {"status", "Failure"}, {"message", message}, {"reason", reason},
              {"code", code}};
  if (!details.is_null()) out["details"] = std::move(details);
  return Response::json(code, out.dump());
}

Response forbidden(const Identity& who, const Permissions& p, const std::string& province) {
  std::vector<std::string> mine(p.read_provinces.begin(), p.read_provinces.end());
  return status_response(
      403, "Forbidden",
      fmt::format("fleetsummaries \"{}\" is forbidden: user \"{}\" may see only province {}",
                  province, who.user,
                  mine.empty() ? "<none>" : fmt::format("{}", fmt::join(mine, ", "))),
      {{"name", province}, {"group", "gantry.io"}, {"kind", "fleetsummaries"}});
}

std::optional<int64_t> parse_nonnegative(const std::string& v) {
  int64_t out = 0;
  const char* end = v.data() + v.size();
  auto [ptr, ec] = std::from_chars(v.data(), end, out);
  if (v.empty() || ec != std::errc() || ptr != end || out < 0) return std::nullopt;
  return out;
}

// Share of nodes not Ready, then failed pods: what makes a province need attention first.
struct Trouble {
  double not_ready_share = 0;
  int64_t bad_nodes = 0;
  int64_t bad_pods = 0;
};
Trouble trouble_of(const FleetCounts& c) {
  Trouble t;
  t.bad_nodes = c.unknown + c.not_ready;
  t.not_ready_share = c.nodes ? double(t.bad_nodes) / double(c.nodes) : 0;
  t.bad_pods = c.phases[3] + c.phases[4];  // Failed, Unknown
  return t;
}

json summary_json(const std::string& name, const FleetCounts& c, Revision rev) {
  json status = c.to_json();
  Trouble t = trouble_of(c);
  status["trouble"] = {{"nodesNotReady", t.bad_nodes}, {"podsFailedOrUnknown", t.bad_pods}};
  return {{"kind", "FleetSummary"},
          {"apiVersion", "gantry.io/v1"},
          {"metadata", {{"name", name}, {"resourceVersion", std::to_string(rev)}}},
          {"status", std::move(status)}};
}

void sort_trouble_first(std::vector<std::pair<std::string, FleetCounts>>& items) {
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    Trouble x = trouble_of(a.second), y = trouble_of(b.second);
    if (x.not_ready_share != y.not_ready_share) return x.not_ready_share > y.not_ready_share;
    if (x.bad_pods != y.bad_pods) return x.bad_pods > y.bad_pods;
    return a.first < b.first;
  });
}

void add_counts(FleetCounts& total, const FleetCounts& c) {
  total.nodes += c.nodes;
  total.ready += c.ready;
  total.not_ready += c.not_ready;
  total.unknown += c.unknown;
  total.pods += c.pods;
  for (size_t i = 0; i < kPhaseCount; ++i) total.phases[i] += c.phases[i];
  for (const auto& [v, n] : c.versions) total.versions[v] += n;
  total.last_change_ms = std::max(total.last_change_ms, c.last_change_ms);
}

}  // namespace

// One open ?watch=1: JSON lines, one event per line, as Kubernetes watches write them.
struct AggregatesApi::Watch {
  std::mutex mu;
  std::shared_ptr<common::ResponseStream> stream;
  std::unique_ptr<FleetIndex::Subscription> subscription;
  Permissions permissions;
  std::set<std::string> seen;  // provinces the client has been told of
  std::chrono::steady_clock::time_point deadline;
  bool done = false;

  bool send(const std::string& type, const json& object) {
    json ev = {{"type", type}, {"object", object}};
    return stream->write(ev.dump() + "\n");
  }

  // `mu` held. The provinces in `changed` as they are now (all readable ones when null).
  void tell(FleetIndex& index, const std::set<std::string>* changed, Revision rev) {
    std::vector<std::pair<std::string, FleetCounts>> items;
    std::vector<std::string> gone;
    auto consider = [&](const std::string& p) {
      if (!permissions.can_read(p)) return;
      if (auto c = index.province(p)) {
        items.emplace_back(p, *c);
      } else if (seen.count(p)) {
        gone.push_back(p);
      }
    };
    if (changed) {
      for (const auto& p : *changed) consider(p);
    } else {
      for (const auto& p : index.provinces()) consider(p);
    }
    sort_trouble_first(items);
    bool ok = true;
    for (const auto& [p, c] : items) {
      ok = ok && send(seen.insert(p).second ? "ADDED" : "MODIFIED", summary_json(p, c, rev));
    }
    for (const auto& p : gone) {
      seen.erase(p);
      ok = ok &&
           send("DELETED", {{"kind", "FleetSummary"},
                            {"apiVersion", "gantry.io/v1"},
                            {"metadata", {{"name", p}, {"resourceVersion", std::to_string(rev)}}}});
    }
    if (changed && changed->empty())
      ok = ok && send("BOOKMARK", {{"kind", "FleetSummary"},
                                   {"apiVersion", "gantry.io/v1"},
                                   {"metadata", {{"resourceVersion", std::to_string(rev)}}}});
    if (!ok) done = true;  // the stream is gone; on_closed removes the watch
  }
};

AggregatesApi::AggregatesApi(FleetIndex& index) : index_(index) {}

AggregatesApi::~AggregatesApi() {
  stop();
}

void AggregatesApi::stop() {
  std::set<std::shared_ptr<Watch>> watches;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    watches.swap(watches_);
  }
  for (const auto& w : watches) {
    std::unique_ptr<FleetIndex::Subscription> sub;
    {
      std::lock_guard lock(w->mu);
      w->done = true;
      sub = std::move(w->subscription);
    }
    sub.reset();
    w->stream->close();
  }
}

size_t AggregatesApi::open_watches() const {
  std::lock_guard lock(mu_);
  return watches_.size();
}

std::optional<Response> AggregatesApi::handle(Request& req, const Identity& who,
                                              const Permissions& p) {
  const std::string& path = req.path;
  bool summaries = path.starts_with(kSummaries);
  bool nodes_path = path.starts_with(kNodes);
  if (!summaries && !nodes_path) return std::nullopt;
  std::string rest = path.substr((summaries ? kSummaries : kNodes).size());
  if (!rest.empty() && rest[0] != '/') return std::nullopt;
  if (req.method != "GET")
    return status_response(
        405, "MethodNotAllowed",
        fmt::format("{} is not supported on fleet aggregates (read-only)", req.method));
  std::string name = rest.empty() ? "" : rest.substr(1);
  if (name.find('/') != std::string::npos)
    return status_response(404, "NotFound", "the server could not find the requested resource");
  if (nodes_path) {
    if (!name.empty())
      return status_response(404, "NotFound",
                             "fleetnodes has no per-node path: use /api/v1/nodes/" + name);
    return nodes(req, who, p);
  }
  if (!name.empty()) return get(req, name, who, p);
  std::string w = req.query_param("watch").value_or("");
  if (w == "1" || w == "true") return watch(req, p);
  return list(req, p);
}

Response AggregatesApi::list(Request& req, const Permissions& p) {
  (void)req;
  Revision rev = index_.revision();
  std::vector<std::pair<std::string, FleetCounts>> items;
  for (const auto& name : index_.provinces())
    if (p.can_read(name))
      if (auto c = index_.province(name)) items.emplace_back(name, *c);
  sort_trouble_first(items);
  FleetCounts total;
  json out = json::array();
  for (const auto& [name, c] : items) {
    add_counts(total, c);
    out.push_back(summary_json(name, c, rev));
  }
  return Response::json(200, json({{"kind", "FleetSummaryList"},
                                   {"apiVersion", "gantry.io/v1"},
                                   {"metadata", {{"resourceVersion", std::to_string(rev)}}},
                                   {"total", total.to_json()},
                                   {"items", std::move(out)}})
                                 .dump());
}

Response AggregatesApi::get(Request& req, const std::string& name, const Identity& who,
                            const Permissions& p) {
  if (!p.can_read(name)) return forbidden(who, p, name);
  Revision rev = index_.revision();
  auto c = index_.province(name);
  if (!c)
    return status_response(404, "NotFound",
                           fmt::format("fleetsummaries \"{}\" not found: no node is labelled "
                                       "topology.gantry.io/province={}",
                                       name, name),
                           {{"name", name}, {"group", "gantry.io"}, {"kind", "fleetsummaries"}});
  json out = summary_json(name, *c, rev);
  json keys = json::object();
  for (const auto& [k, n] : index_.label_keys(name)) keys[k] = n;
  out["status"]["labelKeys"] = std::move(keys);
  if (auto label = req.query_param("groupBy"); label && !label->empty()) {
    json groups = json::array();
    std::vector<std::pair<std::string, FleetCounts>> items;
    for (auto& [value, counts] : index_.breakdown(name, *label)) items.emplace_back(value, counts);
    sort_trouble_first(items);
    for (const auto& [value, counts] : items) {
      json g = counts.to_json();
      g["value"] = value;  // "": nodes without the label
      Trouble t = trouble_of(counts);
      g["trouble"] = {{"nodesNotReady", t.bad_nodes}, {"podsFailedOrUnknown", t.bad_pods}};
      groups.push_back(std::move(g));
    }
    out["breakdown"] = {{"label", *label}, {"groups", std::move(groups)}};
  }
  return Response::json(200, out.dump());
}

Response AggregatesApi::watch(Request& req, const Permissions& p) {
  int64_t timeout = 1800;
  if (auto t = req.query_param("timeoutSeconds")) {
    auto v = parse_nonnegative(*t);
    if (!v)
      return status_response(400, "BadRequest",
                             fmt::format("timeoutSeconds: \"{}\" is not a number of seconds", *t));
    timeout = std::clamp<int64_t>(*v, 1, 3600);
  }
  auto w = std::make_shared<Watch>();
  w->permissions = p;
  w->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
  {
    std::lock_guard lock(mu_);
    if (stopped_) return status_response(503, "ServiceUnavailable", "the server is stopping");
  }
  w->stream = req.stream(200, {{"Content-Type", "application/json"},
                               {"Cache-Control", "no-store"},
                               {"X-Content-Type-Options", "nosniff"}});
  std::weak_ptr<Watch> weak = w;
  // Ends the watch once: no more calls from the index, out of the set.
  auto finish = [this, weak] {
    auto self = weak.lock();
    if (!self) return;
    std::unique_ptr<FleetIndex::Subscription> sub;
    {
      std::lock_guard lock(self->mu);
      self->done = true;
      sub = std::move(self->subscription);
    }
    sub.reset();
    std::lock_guard lock(mu_);
    watches_.erase(self);
  };
  {
    std::lock_guard lock(mu_);
    watches_.insert(w);
  }
  {
    std::lock_guard wlock(w->mu);
    FleetIndex* index = &index_;
    w->subscription =
        index_.subscribe([weak, index, finish](const std::set<std::string>& changed, Revision rev) {
          auto self = weak.lock();
          if (!self) return;
          bool end = false;
          {
            std::lock_guard lock(self->mu);
            if (self->done) return;
            if (std::chrono::steady_clock::now() >= self->deadline) {
              self->stream->close();  // the client watches again
              end = true;
            } else {
              self->tell(*index, &changed, rev);
              end = self->done;
            }
          }
          if (end) finish();
        });
    w->tell(index_, nullptr, index_.revision());
  }
  w->stream->on_closed(finish);
  return Response{};  // ignored: the stream answers
}

Response AggregatesApi::nodes(Request& req, const Identity& who, const Permissions& p) {
  NodeQuery q;
  if (auto province = req.query_param("province"); province && !province->empty()) {
    if (!p.can_read(*province)) return forbidden(who, p, *province);
    q.provinces = std::set<std::string>{*province};
  } else if (!p.admin) {
    q.provinces = p.read_provinces;
  }
  if (auto states = req.query_param("state"); states && !states->empty()) {
    std::string_view rest = *states;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      std::string s(rest.substr(0, comma));
      if (s == "Ready") {
        q.states.insert(NodeState::kReady);
      } else if (s == "NotReady") {
        q.states.insert(NodeState::kNotReady);
      } else if (s == "Unknown") {
        q.states.insert(NodeState::kUnknown);
      } else {
        return status_response(
            400, "BadRequest",
            fmt::format("state: \"{}\" is not one of Ready, NotReady, Unknown", s));
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  q.name_contains = req.query_param("nameContains").value_or("");
  if (auto sel = req.query_param("labelSelector"); sel && !sel->empty()) {
    auto parsed = LabelSelector::parse(*sel);
    if (!parsed.ok())
      return status_response(400, "BadRequest",
                             fmt::format("labelSelector: {}", parsed.status().message()));
    q.labels = [s = std::move(parsed).value()](const std::map<std::string, std::string>& l) {
      return s.matches(l);
    };
  }
  std::string sort = req.query_param("sortBy").value_or("name");
  if (sort.starts_with('-')) {
    q.descending = true;
    sort = sort.substr(1);
  }
  static const std::set<std::string> kSorts = {"name", "state",   "lastSeen",
                                               "pods", "version", "province"};
  if (!kSorts.count(sort))
    return status_response(
        400, "BadRequest",
        fmt::format("sortBy: \"{}\" is not one of name, state, lastSeen, pods, version, province "
                    "(prefix '-' for descending)",
                    sort));
  q.sort_by = sort;
  for (auto [param, target] : {std::pair<const char*, size_t*>{"limit", &q.limit},
                               std::pair<const char*, size_t*>{"offset", &q.offset}}) {
    if (auto v = req.query_param(param)) {
      auto n = parse_nonnegative(*v);
      if (!n)
        return status_response(400, "BadRequest",
                               fmt::format("{}: \"{}\" is not a non-negative integer", param, *v));
      *target = static_cast<size_t>(*n);
    }
  }
  if (q.limit == 0 || q.limit > kMaxLimit) q.limit = q.limit == 0 ? 50 : kMaxLimit;
  auto page = index_.nodes(q);
  json items = json::array();
  for (const auto& row : page.items) items.push_back(row.to_json());
  return Response::json(200,
                        json({{"kind", "FleetNodeList"},
                              {"apiVersion", "gantry.io/v1"},
                              {"metadata", {{"resourceVersion", std::to_string(page.revision)}}},
                              {"total", page.total},
                              {"offset", q.offset},
                              {"limit", q.limit},
                              {"sortBy", (q.descending ? "-" : "") + q.sort_by},
                              {"items", std::move(items)}})
                            .dump());
}

common::Result<std::unique_ptr<Aggregates>> Aggregates::start(Store& store,
                                                              FleetIndex::Options options) {
  auto index = FleetIndex::start(store, options);
  if (!index.ok()) return index.status();
  auto out = std::make_unique<Aggregates>();
  out->index = std::move(index).value();
  out->api = std::make_unique<AggregatesApi>(*out->index);
  return out;
}

Aggregates::~Aggregates() {
  if (api) api->stop();
  api.reset();
  index.reset();
}

}  // namespace gantry::cloud::api
