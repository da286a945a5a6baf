// The built-in kinds, one file each. To add a kind: write kinds/<plural>.cc, declare its function
// here and list it in kinds.cc (see the comment at the top of cloudcore/api/kind.h).
#pragma once

#include "cloudcore/api/kind.h"

namespace gantry::cloud::api::kinds {

Kind pod();
Kind node();
Kind namespace_();
Kind config_map();
Kind secret();
Kind event();
Kind event_v1();  // events.k8s.io/v1: the same stored events in that version's shape
// The columns both Event versions show: LAST SEEN, TYPE, REASON, OBJECT (kind/name under
// `object_field`) and MESSAGE (`message_field`).
std::vector<TableColumn> event_columns(const char* object_field, const char* message_field);
Kind province();  // gantry.io/v1 aggregates, computed (not stored); served by the server itself
// apps/v1 (controllers in cloudcore/controllers/workloads*)
Kind deployment();
Kind replica_set();
Kind daemon_set();
Kind controller_revision();
// batch/v1 (controller in cloudcore/controllers/workloads_job.cc)
Kind job();
Kind cron_job();          // controller in cloudcore/controllers/workloads_cronjob.cc
Kind cron_job_v1beta1();  // the same stored CronJobs for kubectl < 1.21
// gantry.io/v1 Rollout (controller in cloudcore/controllers/rollout*)
Kind rollout();

}  // namespace gantry::cloud::api::kinds
