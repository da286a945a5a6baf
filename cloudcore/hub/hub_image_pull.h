// The ImagePullJob controller's way to the nodes: the hub's tunnels.
#pragma once

#include <string>

#include "cloudcore/controllers/imagepull.h"
#include "cloudcore/hub/hub.h"

namespace gantry::cloud {

class HubPullTransport final : public controllers::PullTransport {
 public:
  explicit HubPullTransport(Hub& hub) : hub_(hub) {}
  bool connected(const std::string& node) const override { return hub_.connected(node); }
  bool send(const std::string& node, const v1::ImagePullRequest& request) override {
    return hub_.send_image_pull(node, request);
  }

 private:
  Hub& hub_;
};

}  // namespace gantry::cloud
