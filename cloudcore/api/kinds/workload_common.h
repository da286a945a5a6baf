// What the apps/v1 kinds (deployments.cc, replicasets.cc, daemonsets.cc, controllerrevisions.cc)
// share: pod template defaults and validation, selector rules, the autoscaling/v1 Scale view and
// Table cells. The controllers that act on these kinds are in cloudcore/controllers/workloads*.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cloudcore/api/kind.h"
#include "common/base/status.h"

namespace gantry::cloud::api::kinds {

// Defaults Kubernetes applies to a PodTemplateSpec (restartPolicy, terminationGracePeriodSeconds,
// dnsPolicy, schedulerName, per container imagePullPolicy and terminationMessage*), then checks
// it makes a valid pod; errors name the field under `path` ("spec.template.spec.containers[0]...").
common::Status prepare_pod_template(nlohmann::json& tmpl, const std::string& path);
// A CronJob's jobTemplate (kinds/jobs.cc): its spec follows a Job's rules (errors under `path`,
// "spec.jobTemplate.spec.template.spec.restartPolicy: ..."); its pod template gets the defaults.
common::Status prepare_job_template(nlohmann::json& tmpl, const std::string& path);
// spec.selector is required, not empty, and matches spec.template.metadata.labels.
common::Status check_selector(const nlohmann::json& obj);
// An int field that must be >= 0 when present ("spec.replicas: Invalid value: -1: must be
// greater than or equal to 0").
common::Status check_non_negative(const nlohmann::json& obj, const char* field,
                                  const std::string& path);
// A Kubernetes IntOrString that must be a non-negative int or "N%".
common::Status check_int_or_percent(const nlohmann::json& v, const std::string& path);
// spec.selector cannot change; the message names the object ("Deployment.apps \"web\" is
// invalid: spec.selector: ... field is immutable").
common::Status check_selector_unchanged(const std::string& kind, const nlohmann::json& old_obj,
                                        const nlohmann::json& new_obj);

// "app=web,tier in (a,b)" from a metav1.LabelSelector (kubectl's SELECTOR column, Scale).
std::string selector_string(const nlohmann::json& selector);
// The autoscaling/v1 Scale of a (rendered) object with spec.replicas.
nlohmann::json scale_of(const nlohmann::json& obj);
// spec.replicas of a Scale a client sent: a non-negative integer.
common::Result<int64_t> replicas_of_scale(const nlohmann::json& scale);

// Table cells.
std::string template_containers(const nlohmann::json& obj);  // "a,b"
std::string template_images(const nlohmann::json& obj);      // "nginx:1.25,busybox"
TableColumn int_column(const char* name, const char* description,
                       std::initializer_list<const char*> path, int64_t fallback = 0);
std::vector<TableColumn> wide_template_columns();  // CONTAINERS, IMAGES, SELECTOR (priority 1)

}  // namespace gantry::cloud::api::kinds
