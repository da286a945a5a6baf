#include "cloudcore/api/kinds/kinds.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace gantry::cloud::api {

namespace kinds {
Kind image_pull_job();  // gantry.io/v1 (kinds/imagepulljobs.cc; controller: controllers/imagepull)
}  // namespace kinds

const KindRegistry& builtin_kinds() {
  static const KindRegistry kRegistry = [] {
    KindRegistry r;
    for (auto make :
         {kinds::pod, kinds::node, kinds::namespace_, kinds::config_map, kinds::secret,
          kinds::event, kinds::province, kinds::deployment, kinds::replica_set, kinds::daemon_set,
          kinds::controller_revision, kinds::job, kinds::cron_job, kinds::rollout, kinds::event_v1,
          kinds::image_pull_job, kinds::cron_job_v1beta1}) {
      auto added = r.add(make());
      if (!added.ok()) {
        spdlog::critical("api kinds: {}", added.to_string());
        std::abort();  // a programming error: two kind files describe the same resource
      }
    }
    return r;
  }();
  return kRegistry;
}

}  // namespace gantry::cloud::api
