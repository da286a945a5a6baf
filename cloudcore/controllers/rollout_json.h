// A gantry.io/v1 Rollout's JSON (spec as the API validated it, status as the Rollout controller
// writes it) to and from the rollout plan's types (rollout_plan.h). Lenient: what does not parse
// takes the default, the API has refused bad input already.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cloudcore/controllers/rollout_plan.h"

namespace gantry::cloud::controllers {

rollout::Spec rollout_spec_from_json(const nlohmann::json& obj);
rollout::Status rollout_status_from_json(const nlohmann::json& obj);
// Writes the plan's status into `status` (a Rollout's status object), keeping what else is there
// (conditions, observedGeneration).
void rollout_status_to_json(const rollout::Status& s, nlohmann::json& status);
// The target's store key ("/daemonsets/NS/NAME"), "" for kinds we do not roll out.
std::string rollout_target_key(const nlohmann::json& obj);

}  // namespace gantry::cloud::controllers
