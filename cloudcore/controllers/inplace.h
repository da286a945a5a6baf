// In-place image updates: when a workload's pod template changes only in container images, its
// pods are updated where they are (same name, uid, IP, volumes) instead of being replaced. The
// cloud rewrites the images (and the revision label) on the existing pod; edgecore pulls the new
// image while the old container runs, then swaps the container inside the same sandbox.
//
// Which workloads: DaemonSets by default (opt out with `gantry.io/update-in-place: "false"`),
// Deployments when they opt in with `gantry.io/update-in-place: "true"`. Any other template
// change replaces the pods as Kubernetes does. docs/workloads.md, "In-place image updates".
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace gantry::cloud::controllers {

// The workload annotation: "true" or "false" (anything else: the kind's default).
inline constexpr const char* kUpdateInPlace = "gantry.io/update-in-place";
// Set on a pod the controller updated in place: "<revision hash> <unix ms>".
inline constexpr const char* kInPlaceUpdated = "gantry.io/in-place-updated";

// True when `new_template` differs from `old_template` (PodTemplateSpecs) and only in the images
// of containers and init containers: the same containers by name and order, every other field of
// the spec, the labels (but for the revision-hash labels) and the annotations equal.
bool images_only_change(const nlohmann::json& old_template, const nlohmann::json& new_template);

// Gives the containers (and init containers) of `pod` the images their namesakes have in
// `new_template`; returns how many changed.
int apply_template_images(nlohmann::json& pod, const nlohmann::json& new_template);

// What the workload's kUpdateInPlace annotation says, `fallback` when it says nothing.
bool update_in_place(const nlohmann::json& workload, bool fallback);

// The template a pod was made from, rebuilt from the pod itself (labels, annotations, spec
// without the binding): for when the revision that made it is no longer recorded.
nlohmann::json template_of_pod(const nlohmann::json& pod);

}  // namespace gantry::cloud::controllers
