// The fleet aggregate endpoints (docs/api.md, "Fleet aggregates"), served from a FleetIndex:
//   GET /apis/gantry.io/v1/fleetsummaries               every readable province, trouble first
//   GET /apis/gantry.io/v1/fleetsummaries?watch=1       the same, then changes as they happen
//   GET /apis/gantry.io/v1/fleetsummaries/{p}[?groupBy=LABEL]
//   GET /apis/gantry.io/v1/fleetnodes?province=&state=&nameContains=&labelSelector=&sortBy=
//       &limit=&offset=                                 the paged, filtered, sorted node table
// A province-scoped token sees only its provinces (403 Forbidden naming them otherwise).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "cloudcore/api/aggregates.h"
#include "cloudcore/api/auth.h"
#include "common/net/http_server.h"

namespace gantry::cloud::api {

class AggregatesApi {
 public:
  explicit AggregatesApi(FleetIndex& index);
  ~AggregatesApi();
  AggregatesApi(const AggregatesApi&) = delete;
  AggregatesApi& operator=(const AggregatesApi&) = delete;

  // The response when `req.path` is one of the endpoints above; nullopt otherwise.
  std::optional<common::Response> handle(common::Request& req, const Identity& who,
                                         const Permissions& p);
  // Ends every open watch. Idempotent.
  void stop();
  size_t open_watches() const;

  struct Watch;

 private:
  common::Response list(common::Request& req, const Permissions& p);
  common::Response get(common::Request& req, const std::string& name, const Identity& who,
                       const Permissions& p);
  common::Response watch(common::Request& req, const Permissions& p);
  common::Response nodes(common::Request& req, const Identity& who, const Permissions& p);

  FleetIndex& index_;
  mutable std::mutex mu_;
  std::set<std::shared_ptr<Watch>> watches_;
  bool stopped_ = false;
};

// Wires the aggregates into the API server: the index and its endpoints, owned together.
struct Aggregates {
  std::unique_ptr<FleetIndex> index;
  std::unique_ptr<AggregatesApi> api;
  static common::Result<std::unique_ptr<Aggregates>> start(Store& store,
                                                           FleetIndex::Options options = {});
  ~Aggregates();
};

}  // namespace gantry::cloud::api
