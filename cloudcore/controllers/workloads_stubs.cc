// Controllers not written yet (Deployment, DaemonSet): their objects are cached but not acted on.
#include "cloudcore/controllers/workloads_impl.h"

namespace gantry::cloud::controllers {

Status WorkloadControllers::Impl::reconcile_deployment(const std::string&, const std::string&) {
  return common::ok_status();
}

Status WorkloadControllers::Impl::reconcile_daemonset(const std::string&, const std::string&) {
  return common::ok_status();
}

}  // namespace gantry::cloud::controllers
