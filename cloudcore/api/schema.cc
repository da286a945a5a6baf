#include "cloudcore/api/schema.h"

#include <fmt/format.h>

namespace gantry::cloud::api {
namespace {

using nlohmann::json;
using Ptr = std::shared_ptr<const Schema>;
using T = Schema::Type;

Ptr leaf(T type, std::string description = "") {
  auto s = std::make_shared<Schema>();
  s->type = type;
  s->description = std::move(description);
  return s;
}
Ptr str(std::string d = "") {
  return leaf(T::kString, std::move(d));
}
Ptr integer(std::string d = "") {
  return leaf(T::kInteger, std::move(d));
}
Ptr boolean(std::string d = "") {
  return leaf(T::kBoolean, std::move(d));
}
Ptr quantity(std::string d = "") {
  return leaf(T::kQuantity, std::move(d));
}
Ptr any(std::string d = "") {
  return leaf(T::kAny, std::move(d));
}
Ptr array(Ptr items, std::string d = "") {
  auto s = std::make_shared<Schema>();
  s->type = T::kArray;
  s->items = std::move(items);
  s->description = std::move(d);
  return s;
}
Ptr map_of(Ptr items, std::string d = "") {
  auto s = std::make_shared<Schema>();
  s->type = T::kMap;
  s->items = std::move(items);
  s->description = std::move(d);
  return s;
}
Ptr object(std::string ref, std::string d,
           std::initializer_list<std::pair<const char*, Ptr>> properties) {
  auto s = std::make_shared<Schema>();
  s->type = T::kObject;
  s->ref = std::move(ref);
  s->description = std::move(d);
  for (const auto& [name, schema] : properties) s->properties.emplace(name, schema);
  return s;
}

constexpr const char* kCore = "io.k8s.api.core.v1.";
constexpr const char* kMeta = "io.k8s.apimachinery.pkg.apis.meta.v1.";
std::string core(const char* name) {
  return std::string(kCore) + name;
}
std::string meta(const char* name) {
  return std::string(kMeta) + name;
}

struct Schemas {
  std::map<std::string, Ptr, std::less<>> kinds;

  Schemas() {
    Ptr owner_ref = object(
        meta("OwnerReference"),
        "OwnerReference contains enough information to let you identify an "
        "owning object.",
        {{"apiVersion", str("API version of the referent.")},
         {"kind", str("Kind of the referent.")},
         {"name", str("Name of the referent.")},
         {"uid", str("UID of the referent.")},
         {"controller", boolean("If true, this reference points to the managing controller.")},
         {"blockOwnerDeletion", boolean()}});
    Ptr object_meta = object(
        meta("ObjectMeta"),
        "ObjectMeta is metadata that all persisted resources must have, which includes all "
        "objects users must create.",
        {{"name",
          str("Name must be unique within a namespace; a DNS-1123 subdomain for most kinds.")},
         {"generateName", str("Optional prefix, used by the server to generate a unique name ONLY "
                              "IF the Name field has not been provided.")},
         {"namespace", str("Namespace defines the space within which each name must be unique.")},
         {"selfLink", str("Deprecated; not set by the server.")},
         {"uid", str("UID is the unique in time and space value for this object. Set by the server "
                     "on create; read-only.")},
         {"resourceVersion", str("An opaque value that represents the internal version of this "
                                 "object, for optimistic concurrency.")},
         {"generation", integer("A sequence number representing a specific generation of the "
                                "desired state. Read-only.")},
         {"creationTimestamp",
          str("The time this object was created, RFC 3339. Set by the server; read-only.")},
         {"deletionTimestamp",
          str("RFC 3339 date and time at which this resource will be deleted. Set by the server.")},
         {"deletionGracePeriodSeconds",
          integer("Seconds allowed for this object to gracefully terminate before it is removed.")},
         {"labels", map_of(str(),
                           "Map of string keys and values that can be used to organize and "
                           "categorize (scope and select) objects.")},
         {"annotations",
          map_of(str(),
                 "Unstructured key value map stored with a resource (at most 256 KiB in total).")},
         {"ownerReferences", array(owner_ref, "List of objects depended by this object.")},
         {"finalizers",
          array(str(), "Must be empty before the object is deleted from the registry.")},
         {"managedFields", array(any(),
                                 "Maps workflow-id and version to the set of fields that are "
                                 "managed by that workflow.")}});

    Ptr key_to_path = object(
        core("KeyToPath"), "Maps a string key to a path within a volume.",
        {{"key", str("The key to project.")},
         {"path", str("The relative path of the file to map the key to; may not contain '..'.")},
         {"mode", integer("Mode bits used to set permissions on this file (0-0777).")}});
    Ptr configmap_volume =
        object(core("ConfigMapVolumeSource"), "Adapts a ConfigMap into a volume.",
               {{"name", str("Name of the referent.")},
                {"items", array(key_to_path)},
                {"defaultMode", integer("Mode bits used to set permissions on created files by "
                                        "default (0-0777, default 0644).")},
                {"optional", boolean()}});
    Ptr secret_volume =
        object(core("SecretVolumeSource"), "Adapts a Secret into a volume.",
               {{"secretName", str("Name of the secret in the pod's namespace to use.")},
                {"items", array(key_to_path)},
                {"defaultMode", integer("Mode bits used to set permissions on created files by "
                                        "default (0-0777, default 0644).")},
                {"optional", boolean()}});
    Ptr volume = object(
        core("Volume"),
        "Volume represents a named volume in a pod that may be accessed by any container in the "
        "pod. The edge supports emptyDir, hostPath, configMap and secret.",
        {{"name", str("Name of the volume; a DNS-1123 label, unique within the pod.")},
         {"emptyDir", object(core("EmptyDirVolumeSource"),
                             "A temporary directory that shares a pod's lifetime.",
                             {{"medium", str()}, {"sizeLimit", quantity()}})},
         {"hostPath",
          object(core("HostPathVolumeSource"),
                 "A pre-existing file or directory on the host machine.",
                 {{"path", str("Path of the directory on the host.")}, {"type", str()}})},
         {"configMap", configmap_volume},
         {"secret", secret_volume},
         {"persistentVolumeClaim", any()},
         {"downwardAPI", any()},
         {"projected", any()},
         {"csi", any()},
         {"ephemeral", any()},
         {"nfs", any()},
         {"iscsi", any()},
         {"gcePersistentDisk", any()},
         {"awsElasticBlockStore", any()},
         {"gitRepo", any()},
         {"glusterfs", any()},
         {"rbd", any()},
         {"flexVolume", any()},
         {"cinder", any()},
         {"cephfs", any()},
         {"flocker", any()},
         {"fc", any()},
         {"azureFile", any()},
         {"azureDisk", any()},
         {"vsphereVolume", any()},
         {"quobyte", any()},
         {"photonPersistentDisk", any()},
         {"portworxVolume", any()},
         {"scaleIO", any()},
         {"storageos", any()},
         {"image", any()}});

    Ptr port =
        object(core("ContainerPort"), "A network port in a single container.",
               {{"name", str("An IANA_SVC_NAME, unique within the pod.")},
                {"containerPort", integer("Port to expose on the pod's IP address (1-65535).")},
                {"hostPort", integer("Port to expose on the host.")},
                {"protocol", str("UDP, TCP, or SCTP. Defaults to \"TCP\".")},
                {"hostIP", str()}});
    Ptr env = object(core("EnvVar"), "An environment variable present in a Container.",
                     {{"name", str("Name of the environment variable.")},
                      {"value", str()},
                      {"valueFrom", any("Source for the environment variable's value.")}});
    Ptr mount = object(
        core("VolumeMount"), "A mounting of a Volume within a container.",
        {{"name", str("This must match the Name of a Volume.")},
         {"mountPath", str("Path within the container at which the volume should be mounted.")},
         {"subPath", str()},
         {"subPathExpr", str()},
         {"readOnly", boolean()},
         {"mountPropagation", str()},
         {"recursiveReadOnly", str()}});
    Ptr resources =
        object(core("ResourceRequirements"), "Compute resource requirements.",
               {{"limits", map_of(quantity(), "Maximum amount of compute resources allowed.")},
                {"requests", map_of(quantity(), "Minimum amount of compute resources required.")},
                {"claims", array(any())}});
    Ptr container = object(
        core("Container"), "A single application container that you want to run within a pod.",
        {{"name", str("Name of the container; a DNS-1123 label, unique within the pod.")},
         {"image", str("Container image name.")},
         {"command", array(str(), "Entrypoint array.")},
         {"args", array(str(), "Arguments to the entrypoint.")},
         {"workingDir", str()},
         {"ports", array(port, "List of ports to expose from the container.")},
         {"envFrom", array(any())},
         {"env", array(env, "List of environment variables to set in the container.")},
         {"resources", resources},
         {"resizePolicy", array(any())},
         {"restartPolicy", str()},
         {"volumeMounts", array(mount, "Pod volumes to mount into the container's filesystem.")},
         {"volumeDevices", array(any())},
         {"livenessProbe", any()},
         {"readinessProbe", any()},
         {"startupProbe", any()},
         {"lifecycle", any()},
         {"terminationMessagePath", str()},
         {"terminationMessagePolicy", str()},
         {"imagePullPolicy", str("Always, Never, IfNotPresent. Defaults to Always if :latest tag "
                                 "is specified, or IfNotPresent otherwise.")},
         {"securityContext", any()},
         {"stdin", boolean()},
         {"stdinOnce", boolean()},
         {"tty", boolean()}});
    Ptr toleration = object(core("Toleration"),
                            "Tolerates any taint that matches the triple <key,value,effect>.",
                            {{"key", str()},
                             {"operator", str()},
                             {"value", str()},
                             {"effect", str()},
                             {"tolerationSeconds", integer()}});
    Ptr pod_spec = object(
        core("PodSpec"), "PodSpec is a description of a pod.",
        {{"volumes",
          array(volume, "List of volumes that can be mounted by containers belonging to the pod.")},
         {"initContainers",
          array(container, "List of initialization containers belonging to the pod.")},
         {"containers",
          array(container, "List of containers belonging to the pod. There must be at least one.")},
         {"ephemeralContainers", array(any())},
         {"restartPolicy", str("Restart policy for all containers within the pod: Always, "
                               "OnFailure, Never. Default to Always.")},
         {"terminationGracePeriodSeconds", integer("Duration in seconds the pod needs to terminate "
                                                   "gracefully. Defaults to 30 seconds.")},
         {"activeDeadlineSeconds", integer()},
         {"dnsPolicy", str("ClusterFirstWithHostNet, ClusterFirst, Default or None. Defaults to "
                           "\"ClusterFirst\".")},
         {"nodeSelector", map_of(str(), "Labels a node must have for the pod to fit on it.")},
         {"serviceAccountName", str()},
         {"serviceAccount", str()},
         {"automountServiceAccountToken", boolean()},
         {"nodeName", str("The node this pod is bound to; set by the scheduler or by the client.")},
         {"hostNetwork", boolean()},
         {"hostPID", boolean()},
         {"hostIPC", boolean()},
         {"shareProcessNamespace", boolean()},
         {"securityContext", any()},
         {"imagePullSecrets", array(any())},
         {"hostname", str()},
         {"subdomain", str()},
         {"affinity", any()},
         {"schedulerName", str()},
         {"tolerations", array(toleration)},
         {"hostAliases", array(any())},
         {"priorityClassName", str()},
         {"priority", integer()},
         {"dnsConfig", any()},
         {"readinessGates", array(any())},
         {"runtimeClassName", str()},
         {"enableServiceLinks", boolean()},
         {"preemptionPolicy", str()},
         {"overhead", map_of(quantity())},
         {"topologySpreadConstraints", array(any())},
         {"setHostnameAsFQDN", boolean()},
         {"os", any()},
         {"hostUsers", boolean()},
         {"schedulingGates", array(any())},
         {"resourceClaims", array(any())},
         {"resources", any()}});
    kinds["Pod"] = object(
        core("Pod"),
        "Pod is a collection of containers that can run on a host. This "
        "resource is created by clients and scheduled onto hosts.",
        {{"apiVersion",
          str("APIVersion defines the versioned schema of this representation of an object.")},
         {"kind",
          str("Kind is a string value representing the REST resource this object represents.")},
         {"metadata", object_meta},
         {"spec", pod_spec},
         {"status", any("Most recently observed status of the pod. Read-only.")}});

    Ptr taint = object(core("Taint"),
                       "The node this Taint is attached to has the \"effect\" on any pod that does "
                       "not tolerate the Taint.",
                       {{"key", str()},
                        {"value", str()},
                        {"effect", str("NoSchedule, PreferNoSchedule or NoExecute.")},
                        {"timeAdded", str()}});
    kinds["Node"] = object(
        core("Node"), "Node is a worker node: here, an edge node joined through gantryadm.",
        {{"apiVersion", str()},
         {"kind", str()},
         {"metadata", object_meta},
         {"spec",
          object(core("NodeSpec"), "NodeSpec describes the attributes that a node is created with.",
                 {{"podCIDR", str()},
                  {"podCIDRs", array(str())},
                  {"providerID", str()},
                  {"unschedulable",
                   boolean("Unschedulable controls node schedulability of new pods.")},
                  {"taints", array(taint)},
                  {"configSource", any()},
                  {"externalID", str()}})},
         {"status", any()}});
    kinds["Namespace"] =
        object(core("Namespace"), "Namespace provides a scope for Names.",
               {{"apiVersion", str()},
                {"kind", str()},
                {"metadata", object_meta},
                {"spec", object(core("NamespaceSpec"), "", {{"finalizers", array(str())}})},
                {"status", any()}});
    kinds["ConfigMap"] =
        object(core("ConfigMap"), "ConfigMap holds configuration data for pods to consume.",
               {{"apiVersion", str()},
                {"kind", str()},
                {"metadata", object_meta},
                {"data", map_of(str(),
                                "Configuration data; keys must consist of alphanumeric characters, "
                                "'-', '_' or '.'.")},
                {"binaryData", map_of(str(), "Binary data, base64-encoded.")},
                {"immutable", boolean("If set to true, the data cannot be updated.")}});
    kinds["Secret"] = object(
        core("Secret"), "Secret holds secret data of a certain type (at most 1 MiB).",
        {{"apiVersion", str()},
         {"kind", str()},
         {"metadata", object_meta},
         {"data", map_of(str(), "Secret data, base64-encoded.")},
         {"stringData", map_of(str(), "Write-only convenience: merged into data on write.")},
         {"type",
          str("Used to facilitate programmatic handling of secret data. Defaults to Opaque.")},
         {"immutable", boolean()}});
    Ptr object_ref = object(core("ObjectReference"), "A reference to an object.",
                            {{"kind", str()},
                             {"namespace", str()},
                             {"name", str()},
                             {"uid", str()},
                             {"apiVersion", str()},
                             {"resourceVersion", str()},
                             {"fieldPath", str()}});
    kinds["Event"] = object(
        core("Event"), "Event is a report of an event somewhere in the cluster.",
        {{"apiVersion", str()},
         {"kind", str()},
         {"metadata", object_meta},
         {"involvedObject", object_ref},
         {"reason", str()},
         {"message", str()},
         {"source", object(core("EventSource"), "", {{"component", str()}, {"host", str()}})},
         {"firstTimestamp", str()},
         {"lastTimestamp", str()},
         {"count", integer()},
         {"type", str()},
         {"eventTime", str()},
         {"series",
          object(core("EventSeries"), "", {{"count", integer()}, {"lastObservedTime", str()}})},
         {"action", str()},
         {"related", object_ref},
         {"reportingComponent", str()},
         {"reportingInstance", str()}});

    // events.k8s.io/v1: the same stored events in that version's shape (kinds/events_v1.cc).
    constexpr const char* kEventsV1 = "io.k8s.api.events.v1.";
    auto events_v1 = [&](const char* name) { return std::string(kEventsV1) + name; };
    kinds["events.k8s.io/Event"] =
        object(events_v1("Event"), "Event is a report of an event somewhere in the cluster.",
               {{"apiVersion", str()},
                {"kind", str()},
                {"metadata", object_meta},
                {"eventTime", str()},
                {"series", object(events_v1("EventSeries"), "",
                                  {{"count", integer()}, {"lastObservedTime", str()}})},
                {"reportingController", str()},
                {"reportingInstance", str()},
                {"action", str()},
                {"reason", str()},
                {"regarding", object_ref},
                {"related", object_ref},
                {"note", str()},
                {"type", str()},
                {"deprecatedSource",
                 object(core("EventSource"), "", {{"component", str()}, {"host", str()}})},
                {"deprecatedFirstTimestamp", str()},
                {"deprecatedLastTimestamp", str()},
                {"deprecatedCount", integer()}});

    // apps/v1: the workloads around a pod template (kinds/deployments.cc, ...).
    constexpr const char* kApps = "io.k8s.api.apps.v1.";
    auto apps = [&](const char* name) { return std::string(kApps) + name; };
    Ptr requirement = object(meta("LabelSelectorRequirement"),
                             "A selector that contains values, a key, and an operator.",
                             {{"key", str()},
                              {"operator", str("In, NotIn, Exists and DoesNotExist.")},
                              {"values", array(str())}});
    Ptr selector =
        object(meta("LabelSelector"),
               "A label query over a set of resources; the result of matchLabels and "
               "matchExpressions are ANDed.",
               {{"matchLabels", map_of(str())}, {"matchExpressions", array(requirement)}});
    Ptr template_spec = object(core("PodTemplateSpec"),
                               "Describes the data a pod should have when created from a template.",
                               {{"metadata", object_meta}, {"spec", pod_spec}});
    Ptr rolling = object(
        apps("RollingUpdateDeployment"), "Spec to control the desired behavior of rolling update.",
        {{"maxSurge",
          quantity("Maximum number of pods above the desired number (number or percent).")},
         {"maxUnavailable",
          quantity("Maximum number of pods unavailable during the update (number or percent).")}});
    Ptr ds_rolling = object(apps("RollingUpdateDaemonSet"),
                            "Spec to control the desired behavior of daemon set rolling update.",
                            {{"maxSurge", quantity()}, {"maxUnavailable", quantity()}});
    kinds["apps/Deployment"] = object(
        apps("Deployment"), "Deployment enables declarative updates for Pods and ReplicaSets.",
        {{"apiVersion", str()},
         {"kind", str()},
         {"metadata", object_meta},
         {"spec",
          object(apps("DeploymentSpec"), "The desired behavior of the Deployment.",
                 {{"replicas", integer("Number of desired pods. Defaults to 1.")},
                  {"selector", selector},
                  {"template", template_spec},
                  {"strategy",
                   object(apps("DeploymentStrategy"), "How to replace existing pods with new ones.",
                          {{"type", str("Recreate or RollingUpdate (default).")},
                           {"rollingUpdate", rolling}})},
                  {"minReadySeconds", integer()},
                  {"revisionHistoryLimit", integer()},
                  {"paused", boolean()},
                  {"progressDeadlineSeconds", integer()}})},
         {"status", any("Most recently observed status of the Deployment. Read-only.")}});
    kinds["apps/ReplicaSet"] = object(
        apps("ReplicaSet"),
        "ReplicaSet ensures that a specified number of pod replicas are running at any given time.",
        {{"apiVersion", str()},
         {"kind", str()},
         {"metadata", object_meta},
         {"spec", object(apps("ReplicaSetSpec"), "The specification of a ReplicaSet.",
                         {{"replicas", integer()},
                          {"minReadySeconds", integer()},
                          {"selector", selector},
                          {"template", template_spec}})},
         {"status", any()}});
    kinds["apps/DaemonSet"] = object(
        apps("DaemonSet"),
        "DaemonSet represents the configuration of a daemon set: a pod on each matching node.",
        {{"apiVersion", str()},
         {"kind", str()},
         {"metadata", object_meta},
         {"spec",
          object(apps("DaemonSetSpec"), "The specification of a daemon set.",
                 {{"selector", selector},
                  {"template", template_spec},
                  {"updateStrategy", object(apps("DaemonSetUpdateStrategy"), "",
                                            {{"type", str("RollingUpdate (default) or OnDelete.")},
                                             {"rollingUpdate", ds_rolling}})},
                  {"minReadySeconds", integer()},
                  {"revisionHistoryLimit", integer()}})},
         {"status", any()}});
    kinds["apps/ControllerRevision"] = object(
        apps("ControllerRevision"), "An immutable snapshot of state data (a DaemonSet's template).",
        {{"apiVersion", str()},
         {"kind", str()},
         {"metadata", object_meta},
         {"data", any("The serialized representation of the state.")},
         {"revision", integer("The revision of the state represented by data.")}});

    // batch/v1 (kinds/jobs.cc). The policies Gantry stores without honouring them are kept
    // whole (`any`): they are reported back as warnings, not pruned.
    auto batch = [](const char* name) { return std::string("io.k8s.api.batch.v1.") + name; };
    Ptr job_spec =
        object(batch("JobSpec"), "Specification of the desired behavior of a job.",
               {{"parallelism", integer("Pods to run at any time. Defaults to 1.")},
                {"completions", integer("Successful pods the job needs. Defaults to 1.")},
                {"activeDeadlineSeconds", integer()},
                {"backoffLimit", integer("Retries before the job fails. Defaults to 6.")},
                {"selector", selector},
                {"manualSelector", boolean()},
                {"template", template_spec},
                {"ttlSecondsAfterFinished", integer()},
                {"completionMode", str("NonIndexed (default).")},
                {"suspend", boolean()},
                {"podReplacementPolicy", str()},
                {"podFailurePolicy", any()},
                {"successPolicy", any()},
                {"backoffLimitPerIndex", integer()},
                {"maxFailedIndexes", integer()},
                {"managedBy", str()}});
    kinds["batch/Job"] = object(batch("Job"), "Job represents the configuration of a single job.",
                                {{"apiVersion", str()},
                                 {"kind", str()},
                                 {"metadata", object_meta},
                                 {"spec", job_spec},
                                 {"status", any("Current status of a job. Read-only.")}});
    kinds["batch/CronJob"] = object(
        batch("CronJob"), "CronJob represents the configuration of a single cron job.",
        {{"apiVersion", str()},
         {"kind", str()},
         {"metadata", object_meta},
         {"spec",
          object(batch("CronJobSpec"), "When the job runs and what it runs.",
                 {{"schedule", str("The schedule in Cron format (UTC).")},
                  {"timeZone", str()},
                  {"startingDeadlineSeconds", integer()},
                  {"concurrencyPolicy", str("Allow (default), Forbid or Replace.")},
                  {"suspend", boolean()},
                  {"jobTemplate", object(batch("JobTemplateSpec"), "The Job each run creates.",
                                         {{"metadata", object_meta}, {"spec", job_spec}})},
                  {"successfulJobsHistoryLimit", integer()},
                  {"failedJobsHistoryLimit", integer()}})},
         {"status", any("Current status of a cron job. Read-only.")}});
  }
};

const Schemas& schemas() {
  static const Schemas kSchemas;
  return kSchemas;
}

void prune(const Schema& schema, json& value, const std::string& path,
           std::vector<std::string>& unknown) {
  switch (schema.type) {
    case T::kObject: {
      if (!value.is_object()) return;  // a type error: validation's to report
      for (auto it = value.begin(); it != value.end();) {
        auto known = schema.properties.find(it.key());
        std::string child = path.empty() ? it.key() : path + "." + it.key();
        if (known == schema.properties.end()) {
          unknown.push_back(child);
          it = value.erase(it);
          continue;
        }
        prune(*known->second, it.value(), child, unknown);
        ++it;
      }
      return;
    }
    case T::kMap:
      if (!value.is_object() || !schema.items) return;
      for (auto it = value.begin(); it != value.end(); ++it)
        prune(*schema.items, it.value(), fmt::format("{}[{}]", path, it.key()), unknown);
      return;
    case T::kArray:
      if (!value.is_array() || !schema.items) return;
      for (size_t i = 0; i < value.size(); ++i)
        prune(*schema.items, value[i], fmt::format("{}[{}]", path, i), unknown);
      return;
    default:
      return;
  }
}

}  // namespace

const Schema* schema_for(std::string_view group, std::string_view kind) {
  const auto& k = schemas().kinds;
  auto it = group.empty() ? k.find(kind) : k.find(fmt::format("{}/{}", group, kind));
  return it == k.end() ? nullptr : it->second.get();
}

std::vector<std::string> schema_kinds() {
  std::vector<std::string> out;
  for (const auto& [kind, s] : schemas().kinds) out.push_back(kind);
  return out;
}

common::Result<FieldValidation> parse_field_validation(const std::optional<std::string>& value) {
  if (!value || value->empty() || *value == "Warn") return FieldValidation::kWarn;
  if (*value == "Strict") return FieldValidation::kStrict;
  if (*value == "Ignore") return FieldValidation::kIgnore;
  return common::make_error(common::Code::kInvalidArgument,
                            "fieldValidation: Invalid value: \"{}\": fieldValidation must be one "
                            "of \"Ignore\", \"Warn\", or \"Strict\"",
                            *value);
}

std::vector<std::string> prune_unknown_fields(std::string_view group, std::string_view kind,
                                              json& obj) {
  std::vector<std::string> unknown;
  if (const Schema* s = schema_for(group, kind)) prune(*s, obj, "", unknown);
  return unknown;
}

UnknownFieldVerdict judge_unknown_fields(FieldValidation mode,
                                         const std::vector<std::string>& unknown) {
  UnknownFieldVerdict out;
  if (unknown.empty() || mode == FieldValidation::kIgnore) return out;
  if (mode == FieldValidation::kStrict) {
    std::string message = "strict decoding error: ";
    for (size_t i = 0; i < unknown.size(); ++i)
      message += fmt::format("{}unknown field \"{}\"", i ? ", " : "", unknown[i]);
    out.error = std::move(message);
    return out;
  }
  for (const auto& path : unknown)
    out.warnings.push_back(fmt::format("unknown field \"{}\"", path));
  return out;
}

}  // namespace gantry::cloud::api
