// Table-driven validation and defaulting tests: each case is a Kubernetes rule, the object that
// breaks it (a merge patch over a valid object of the kind) and what kube-apiserver answers:
// the field path and the cause reason (all are 422 Invalid).
#include "cloudcore/api/validation.h"

#include <catch2/catch.hpp>
#include <string>

#include "cloudcore/registry/objects.h"  // parse_quantity

namespace gantry::cloud::api {
namespace {

using nlohmann::json;

json valid(const std::string& kind) {
  if (kind == "Pod")
    return json::parse(R"({"apiVersion":"v1","kind":"Pod",
      "metadata":{"name":"web","namespace":"default","labels":{"app":"web"}},
      "spec":{"volumes":[{"name":"data","emptyDir":{}},{"name":"cfg","configMap":{"name":"c"}}],
              "containers":[{"name":"app","image":"nginx:1.25",
                             "ports":[{"name":"http","containerPort":80}],
                             "env":[{"name":"MODE","value":"prod"}],
                             "volumeMounts":[{"name":"data","mountPath":"/data"}],
                             "resources":{"limits":{"cpu":"1","memory":"128Mi"},
                                          "requests":{"cpu":"100m"}}}]}})");
  if (kind == "ConfigMap")
    return json::parse(R"({"apiVersion":"v1","kind":"ConfigMap",
      "metadata":{"name":"cfg","namespace":"default"},"data":{"app.conf":"x=1","KEY_2":"y"}})");
  if (kind == "Secret")
    return json::parse(R"({"apiVersion":"v1","kind":"Secret",
      "metadata":{"name":"s","namespace":"default"},"data":{"password":"aHVudGVyMg=="}})");
  if (kind == "Node")
    return json::parse(R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"edge-1.example"},
      "spec":{"taints":[{"key":"gantry.io/edge","effect":"NoSchedule"}]}})");
  if (kind == "Namespace")
    return json::parse(R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a"}})");
  return json::object();
}

struct Case {
  std::string rule;
  std::string kind;
  std::string patch;  // RFC 7386 merge patch over valid(kind)
  std::string field;  // "" : valid
  std::string reason;
};

const Case kCases[] = {
    // --- names and metadata (every kind) ---
    {"a name with two dots is not a DNS-1123 subdomain", "ConfigMap",
     R"({"metadata":{"name":"a..b"}})", "metadata.name", "FieldValueInvalid"},
    {"upper case is refused in names", "Pod", R"({"metadata":{"name":"Web"}})", "metadata.name",
     "FieldValueInvalid"},
    {"a name is required", "Secret", R"({"metadata":{"name":null}})", "metadata.name",
     "FieldValueRequired"},
    {"a 254-character name is too long", "ConfigMap",
     R"({"metadata":{"name":")" + std::string(254, 'a') + R"("}})", "metadata.name",
     "FieldValueInvalid"},
    {"namespace names are DNS-1123 labels: no dots", "Namespace",
     R"({"metadata":{"name":"team.a"}})", "metadata.name", "FieldValueInvalid"},
    {"node names may have dots", "Node", R"({"metadata":{"name":"edge-1.prov-a"}})", "", ""},
    {"a label key with a space is refused", "Pod", R"({"metadata":{"labels":{"a b":"x"}}})",
     "metadata.labels", "FieldValueInvalid"},
    {"a label value over 63 characters is refused", "Pod",
     R"({"metadata":{"labels":{"a":")" + std::string(64, 'v') + R"("}}})", "metadata.labels",
     "FieldValueInvalid"},
    {"a prefixed label key is fine", "Pod",
     R"({"metadata":{"labels":{"example.com/tier":"front_end.1"}}})", "", ""},
    {"a label key with two slashes is refused", "Pod", R"({"metadata":{"labels":{"a/b/c":"x"}}})",
     "metadata.labels", "FieldValueInvalid"},
    {"a label value must be a string", "Pod", R"({"metadata":{"labels":{"a":1}}})",
     "metadata.labels[a]", "FieldValueTypeInvalid"},
    {"an annotation key must be a qualified name", "ConfigMap",
     R"({"metadata":{"annotations":{"-bad":"x"}}})", "metadata.annotations", "FieldValueInvalid"},
    {"annotations over 256 KiB in total are refused", "ConfigMap",
     R"({"metadata":{"annotations":{"big":")" + std::string(256 * 1024, 'x') + R"("}}})",
     "metadata.annotations", "FieldValueTooLong"},

    // --- ConfigMap / Secret keys and sizes ---
    {"a config key cannot climb out of the volume", "ConfigMap",
     R"({"data":{"../../etc/x":"pwned"}})", "data[../../etc/x]", "FieldValueInvalid"},
    {"a config key cannot be '..'", "ConfigMap", R"({"data":{"..":"x"}})", "data[..]",
     "FieldValueInvalid"},
    {"a config key cannot be '.'", "Secret", R"({"data":{".":"eA=="}})", "data[.]",
     "FieldValueInvalid"},
    {"a config key cannot start with '..'", "ConfigMap", R"({"data":{"..data":"x"}})",
     "data[..data]", "FieldValueInvalid"},
    {"a config key may start with one dot", "ConfigMap", R"({"data":{".hidden":"x"}})", "", ""},
    {"a secret key with a slash is refused", "Secret", R"({"data":{"a/b":"eA=="}})", "data[a/b]",
     "FieldValueInvalid"},
    {"stringData keys follow the same rule", "Secret", R"({"stringData":{"a b":"x"}})",
     "stringData[a b]", "FieldValueInvalid"},
    {"a configmap over 1 MiB is refused", "ConfigMap",
     R"({"data":{"big":")" + std::string(1024 * 1024, 'x') + R"("}})", "data", "FieldValueTooLong"},
    {"binaryData must be base64", "ConfigMap", R"({"binaryData":{"b":"not base64!"}})",
     "binaryData[b]", "FieldValueInvalid"},
    {"a key in both data and binaryData is refused", "ConfigMap",
     R"({"binaryData":{"KEY_2":"eA=="}})", "binaryData[KEY_2]", "FieldValueInvalid"},
    {"secret data must be base64", "Secret", R"({"data":{"password":"hunter2"}})", "data[password]",
     "FieldValueInvalid"},
    {"a TLS secret needs tls.crt", "Secret",
     R"({"type":"kubernetes.io/tls","data":{"tls.key":"eA=="}})", "data[tls.crt]",
     "FieldValueRequired"},

    // --- Pod spec ---
    {"a pod needs containers", "Pod", R"({"spec":{"containers":[]}})", "spec.containers",
     "FieldValueRequired"},
    {"container names are unique", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a"},{"name":"app","image":"b"}]}})",
     "spec.containers[1].name", "FieldValueDuplicate"},
    {"init and app containers share one name space", "Pod",
     R"({"spec":{"initContainers":[{"name":"app","image":"busybox"}]}})", "spec.containers[0].name",
     "FieldValueDuplicate"},
    {"a container name is a DNS-1123 label", "Pod",
     R"({"spec":{"containers":[{"name":"App_1","image":"a"}]}})", "spec.containers[0].name",
     "FieldValueInvalid"},
    {"a container needs an image", "Pod", R"({"spec":{"containers":[{"name":"app"}]}})",
     "spec.containers[0].image", "FieldValueRequired"},
    {"an env var name cannot start with a digit", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","env":[{"name":"1X","value":"v"}]}]}})",
     "spec.containers[0].env[0].name", "FieldValueInvalid"},
    {"an env var name may contain dots and dashes", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","env":[{"name":"my.env-NAME"}]}]}})", "",
     ""},
    {"container ports are 1-65535", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","ports":[{"containerPort":70000}]}]}})",
     "spec.containers[0].ports[0].containerPort", "FieldValueInvalid"},
    {"port 0 is refused", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","ports":[{"containerPort":0}]}]}})",
     "spec.containers[0].ports[0].containerPort", "FieldValueInvalid"},
    {"port names are unique in the pod", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","ports":[{"name":"http","containerPort":80},{"name":"http","containerPort":81}]}]}})",
     "spec.containers[0].ports[1].name", "FieldValueDuplicate"},
    {"a port name needs a letter", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","ports":[{"name":"8080","containerPort":80}]}]}})",
     "spec.containers[0].ports[0].name", "FieldValueInvalid"},
    {"a port protocol is TCP, UDP or SCTP", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","ports":[{"containerPort":80,"protocol":"HTTP"}]}]}})",
     "spec.containers[0].ports[0].protocol", "FieldValueNotSupported"},
    {"a mount of an undefined volume is refused", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","volumeMounts":[{"name":"nope","mountPath":"/x"}]}]}})",
     "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound"},
    {"a mount needs a path", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","volumeMounts":[{"name":"data"}]}]}})",
     "spec.containers[0].volumeMounts[0].mountPath", "FieldValueRequired"},
    {"a subPath cannot climb out", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","volumeMounts":[{"name":"data","mountPath":"/d","subPath":"../x"}]}]}})",
     "spec.containers[0].volumeMounts[0].subPath", "FieldValueInvalid"},
    {"volume names are unique", "Pod",
     R"({"spec":{"volumes":[{"name":"data","emptyDir":{}},{"name":"data","emptyDir":{}}]}})",
     "spec.volumes[1].name", "FieldValueDuplicate"},
    {"a volume needs a type", "Pod", R"({"spec":{"volumes":[{"name":"data"}]}})", "spec.volumes[0]",
     "FieldValueRequired"},
    {"a volume item path cannot climb out", "Pod",
     R"({"spec":{"volumes":[{"name":"data","secret":{"secretName":"s","items":[{"key":"k","path":"a/../../x"}]}}]}})",
     "spec.volumes[0].secret.items[0].path", "FieldValueInvalid"},
    {"a volume item path is relative", "Pod",
     R"({"spec":{"volumes":[{"name":"data","configMap":{"name":"c","items":[{"key":"k","path":"/etc/x"}]}}]}})",
     "spec.volumes[0].configMap.items[0].path", "FieldValueInvalid"},
    {"a defaultMode past 0777 is refused", "Pod",
     R"({"spec":{"volumes":[{"name":"data","secret":{"secretName":"s","defaultMode":4096}}]}})",
     "spec.volumes[0].secret.defaultMode", "FieldValueInvalid"},
    {"a negative grace period is refused", "Pod",
     R"({"spec":{"terminationGracePeriodSeconds":-1}})", "spec.terminationGracePeriodSeconds",
     "FieldValueInvalid"},
    {"a grace period of 0 is fine", "Pod", R"({"spec":{"terminationGracePeriodSeconds":0}})", "",
     ""},
    {"restartPolicy is an enum", "Pod", R"({"spec":{"restartPolicy":"Sometimes"}})",
     "spec.restartPolicy", "FieldValueNotSupported"},
    {"dnsPolicy is an enum", "Pod", R"({"spec":{"dnsPolicy":"Cluster"}})", "spec.dnsPolicy",
     "FieldValueNotSupported"},
    {"imagePullPolicy is an enum", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","imagePullPolicy":"Sometimes"}]}})",
     "spec.containers[0].imagePullPolicy", "FieldValueNotSupported"},
    {"a quantity must parse", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","resources":{"limits":{"cpu":"lots"}}}]}})",
     "spec.containers[0].resources.limits[cpu]", "FieldValueInvalid"},
    {"a quantity cannot be negative", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","resources":{"requests":{"memory":"-1Mi"}}}]}})",
     "spec.containers[0].resources.requests[memory]", "FieldValueInvalid"},
    {"requests cannot exceed limits", "Pod",
     R"({"spec":{"containers":[{"name":"app","image":"a","resources":{"limits":{"cpu":"500m"},"requests":{"cpu":"1"}}}]}})",
     "spec.containers[0].resources.requests[cpu]", "FieldValueInvalid"},
    {"a nodeName must be a DNS subdomain", "Pod", R"({"spec":{"nodeName":"Node_1"}})",
     "spec.nodeName", "FieldValueInvalid"},
    {"a grace period must be an integer", "Pod",
     R"({"spec":{"terminationGracePeriodSeconds":"30"}})", "spec.terminationGracePeriodSeconds",
     "FieldValueTypeInvalid"},

    // --- Node ---
    {"a taint effect is an enum", "Node",
     R"({"spec":{"taints":[{"key":"k","effect":"Sometimes"}]}})", "spec.taints[0].effect",
     "FieldValueNotSupported"},
    {"taints are unique by key and effect", "Node",
     R"({"spec":{"taints":[{"key":"k","effect":"NoSchedule"},{"key":"k","effect":"NoSchedule"}]}})",
     "spec.taints[1]", "FieldValueDuplicate"},
};

TEST_CASE("validation: each Kubernetes rule answers with its field path and reason") {
  for (const Case& c : kCases) {
    INFO(c.kind << ": " << c.rule);
    json obj = valid(c.kind);
    obj.merge_patch(json::parse(c.patch));
    default_object(c.kind, obj);
    FieldErrors errors = validate_object(c.kind, obj);
    if (c.field.empty()) {
      for (const auto& e : errors) INFO(e.message());
      CHECK(errors.empty());
      continue;
    }
    REQUIRE_FALSE(errors.empty());
    bool found = false;
    for (const auto& e : errors)
      if (e.field == c.field && e.reason() == c.reason) found = true;
    if (!found)
      for (const auto& e : errors)
        UNSCOPED_INFO(e.field << " " << e.reason() << " " << e.message());
    CHECK(found);
    json status = invalid_status(c.kind, "x", errors);
    CHECK(status["code"] == 422);
    CHECK(status["reason"] == "Invalid");
  }
}

TEST_CASE("validation: the valid object of every kind passes") {
  for (const char* kind : {"Pod", "ConfigMap", "Secret", "Node", "Namespace"}) {
    INFO(kind);
    json obj = valid(kind);
    default_object(kind, obj);
    auto errors = validate_object(kind, obj);
    for (const auto& e : errors) UNSCOPED_INFO(e.message());
    CHECK(errors.empty());
  }
}

TEST_CASE("validation: messages are worded as kube-apiserver words them") {
  json cm = valid("ConfigMap");
  cm["metadata"]["name"] = "a..b";
  auto errors = validate_object("ConfigMap", cm);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message() ==
        "metadata.name: Invalid value: \"a..b\": a lowercase RFC 1123 subdomain must consist of "
        "lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
  json status = invalid_status("ConfigMap", "a..b", errors);
  CHECK(status["message"] == "ConfigMap \"a..b\" is invalid: " + errors[0].message());
  CHECK(status["details"] == json::parse(R"({"name":"a..b","kind":"ConfigMap","causes":[
      {"reason":"FieldValueInvalid","field":"metadata.name","message":)" +
                                         json(errors[0].body()).dump() + "}]}"));

  json pod = valid("Pod");
  pod["spec"]["restartPolicy"] = "Sometimes";
  pod["spec"]["terminationGracePeriodSeconds"] = -1;
  errors = validate_object("Pod", pod);
  REQUIRE(errors.size() == 2);
  CHECK(invalid_message("Pod", "web", errors) ==
        "Pod \"web\" is invalid: [spec.restartPolicy: Unsupported value: \"Sometimes\": "
        "supported values: \"Always\", \"OnFailure\", \"Never\", "
        "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal "
        "to 0]");

  json mount = valid("Pod");
  mount["spec"]["containers"][0]["volumeMounts"][0]["name"] = "nope";
  errors = validate_object("Pod", mount);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message() == "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"");
}

TEST_CASE("validation: updates keep names, Secret type and immutable data") {
  json old_secret = valid("Secret");
  default_object("Secret", old_secret);
  json changed = old_secret;
  changed["type"] = "kubernetes.io/basic-auth";
  changed["data"]["username"] = "YQ==";
  auto errors = validate_object("Secret", changed, &old_secret);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "type");
  CHECK(errors[0].body() == "Invalid value: \"kubernetes.io/basic-auth\": field is immutable");

  json old_cm = valid("ConfigMap");
  old_cm["immutable"] = true;
  json edit = old_cm;
  edit["data"]["app.conf"] = "x=2";
  errors = validate_object("ConfigMap", edit, &old_cm);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].field == "data");
  CHECK(errors[0].reason() == "FieldValueForbidden");
  CHECK(validate_object("ConfigMap", old_cm, &old_cm).empty());
}

TEST_CASE("defaults: pods get Kubernetes' defaults, and what the client set is kept") {
  json pod = json::parse(R"({"metadata":{"name":"p","namespace":"default"},"spec":{
      "containers":[{"name":"a","image":"nginx"},{"name":"b","image":"nginx:1.25"},
                    {"name":"c","image":"registry:5000/app:latest"},
                    {"name":"d","image":"registry:5000/app"},
                    {"name":"e","image":"app@sha256:abcd"},
                    {"name":"f","image":"app:1","imagePullPolicy":"Never",
                     "ports":[{"containerPort":80}],"resources":{"limits":{"cpu":"1"}}}],
      "volumes":[{"name":"s","secret":{"secretName":"x"}}]}})");
  default_object("Pod", pod);
  const json& spec = pod["spec"];
  CHECK(spec["restartPolicy"] == "Always");
  CHECK(spec["dnsPolicy"] == "ClusterFirst");
  CHECK(spec["terminationGracePeriodSeconds"] == 30);
  CHECK(spec["schedulerName"] == "default-scheduler");
  CHECK(spec["containers"][0]["imagePullPolicy"] == "Always");
  CHECK(spec["containers"][1]["imagePullPolicy"] == "IfNotPresent");
  CHECK(spec["containers"][2]["imagePullPolicy"] == "Always");
  CHECK(spec["containers"][3]["imagePullPolicy"] == "Always");
  CHECK(spec["containers"][4]["imagePullPolicy"] == "IfNotPresent");
  CHECK(spec["containers"][5]["imagePullPolicy"] == "Never");
  CHECK(spec["containers"][5]["ports"][0]["protocol"] == "TCP");
  CHECK(spec["containers"][5]["resources"]["requests"]["cpu"] == "1");
  CHECK(spec["volumes"][0]["secret"]["defaultMode"] == 420);

  json kept = json::parse(R"({"spec":{"restartPolicy":"Never","terminationGracePeriodSeconds":0,
      "containers":[]}})");
  default_object("Pod", kept);
  CHECK(kept["spec"]["restartPolicy"] == "Never");
  CHECK(kept["spec"]["terminationGracePeriodSeconds"] == 0);

  json again = pod;
  default_object("Pod", again);
  CHECK(again == pod);
}

TEST_CASE("defaults: a Secret is Opaque unless typed, and create metadata is set") {
  json s = valid("Secret");
  default_object("Secret", s);
  CHECK(s["type"] == "Opaque");
  json tls = valid("Secret");
  tls["type"] = "kubernetes.io/tls";
  default_object("Secret", tls);
  CHECK(tls["type"] == "kubernetes.io/tls");

  json obj = valid("ConfigMap");
  set_create_metadata(obj, std::chrono::system_clock::time_point(std::chrono::seconds(1796222640)));
  CHECK(obj["metadata"]["creationTimestamp"] == "2026-12-02T14:44:00Z");
  std::string uid = obj["metadata"]["uid"];
  CHECK(uid.size() == 36);
  CHECK(uid[14] == '4');
  json other = valid("ConfigMap");
  set_create_metadata(other, std::chrono::system_clock::now());
  CHECK(other["metadata"]["uid"] != uid);
}

TEST_CASE("quantities parse as Kubernetes writes them") {
  CHECK(*parse_quantity("100m") == Approx(0.1));
  CHECK(*parse_quantity("128Mi") == Approx(128.0 * 1024 * 1024));
  CHECK(*parse_quantity("1.5") == Approx(1.5));
  CHECK(*parse_quantity("2e3") == Approx(2000));
  CHECK(*parse_quantity("1G") == Approx(1e9));
  for (const char* bad : {"", "lots", "1.2.3", "1Mb", "Mi", "1 Mi", "--1"}) {
    INFO(bad);
    CHECK_FALSE(parse_quantity(bad).has_value());
  }
}

}  // namespace
}  // namespace gantry::cloud::api
