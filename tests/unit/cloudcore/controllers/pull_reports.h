// What a node answers an ImagePullRequest with once it has pulled every image (for the tests
// that stand in for the nodes).
#pragma once

#include "gantry/v1/image_pull.pb.h"

namespace gantry::test {

inline gantry::v1::ImagePullReport pulled_report(const gantry::v1::ImagePullRequest& request) {
  gantry::v1::ImagePullReport report;
  report.set_job(request.job());
  report.set_job_uid(request.job_uid());
  for (const auto& image : request.images()) {
    auto* r = report.add_images();
    r->set_image(image);
    r->set_phase(gantry::v1::IMAGE_PULL_PHASE_SUCCEEDED);
    r->set_image_id("sha256:" + image);
    r->set_attempts(1);
  }
  return report;
}

}  // namespace gantry::test
