// Protobuf request bodies as kubectl >= 1.33 sends them (`kubectl create configmap|secret|
// namespace`), and bodies that are not such objects: a message, never a crash.
#include "cloudcore/api/protobuf_body.h"

#include <catch2/catch.hpp>
#include <string>

namespace gantry::cloud::api {
namespace {

using json = nlohmann::json;

// A tiny encoder for the cases: varint, tag, length-delimited and varint fields.
std::string varint(uint64_t v) {
  std::string out;
  do {
    auto byte = static_cast<uint8_t>(v & 0x7f);
    v >>= 7;
    if (v) byte |= 0x80;
    out.push_back(static_cast<char>(byte));
  } while (v);
  return out;
}
std::string field(uint32_t number, const std::string& data) {
  return varint((uint64_t{number} << 3) | 2) + varint(data.size()) + data;
}
std::string field_varint(uint32_t number, uint64_t v) {
  return varint(uint64_t{number} << 3) + varint(v);
}
std::string entry(const std::string& key, const std::string& value) {
  return field(1, key) + field(2, value);
}
std::string envelope(const std::string& kind, const std::string& raw) {
  return std::string("k8s\0", 4) + field(1, field(1, "v1") + field(2, kind)) + field(2, raw) +
         field(3, "") + field(4, "");
}
// ObjectMeta as Go writes it: every non-pointer string, even empty; generation 0; an empty time.
std::string meta(const std::string& name, const std::string& extra = "") {
  return field(1, name) + field(2, "") + field(3, "") + field(4, "") + field(5, "") + field(6, "") +
         field_varint(7, 0) + field(8, "") + extra;
}

TEST_CASE("kubectl's protobuf ConfigMap, Secret and Namespace bodies decode to their JSON",
          "[api][protobuf]") {
  // kubectl create configmap c --from-literal=a=b --from-file=bin=... -l app=web
  std::string cm = field(1, meta("c", field(11, entry("app", "web")))) + field(2, entry("a", "b")) +
                   field(2, entry("empty", "")) + field(3, entry("bin", std::string("\x7f\0E", 3)));
  auto got = decode_protobuf_body("", "ConfigMap", envelope("ConfigMap", cm));
  REQUIRE(got.ok());
  CHECK(*got == json{{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", "c"}, {"labels", {{"app", "web"}}}}},
                     {"data", {{"a", "b"}, {"empty", ""}}},
                     {"binaryData", {{"bin", "fwBF"}}}});

  // kubectl create secret generic s --type=my/type --from-literal=a=b; immutable as a pointer.
  std::string secret = field(1, meta("s")) + field(2, entry("a", "b")) + field(3, "my/type") +
                       field(4, entry("plain", "text")) + field_varint(5, 0);
  got = decode_protobuf_body("", "Secret", envelope("Secret", secret));
  REQUIRE(got.ok());
  CHECK(*got == json{{"apiVersion", "v1"},
                     {"kind", "Secret"},
                     {"metadata", {{"name", "s"}}},
                     {"data", {{"a", "Yg=="}}},
                     {"type", "my/type"},
                     {"stringData", {{"plain", "text"}}},
                     {"immutable", false}});

  // kubectl create namespace n: empty spec and status are left out; finalizers, owner
  // references, timestamps and unknown field numbers (managedFields 17, a future 99) as Go reads.
  std::string owner =
      field(5, "v1") + field(1, "Node") + field(3, "n1") + field(4, "u-1") + field_varint(6, 1);
  std::string ns_meta = field(1, "n") + field(8, field_varint(1, 1764547200)) + field(13, owner) +
                        field(14, "gantry.io/keep") + field_varint(10, 0) + field(17, "anything") +
                        field_varint(99, 7);
  std::string ns = field(1, ns_meta) + field(2, "") + field(3, field(1, ""));
  got = decode_protobuf_body("", "Namespace", envelope("Namespace", ns));
  REQUIRE(got.ok());
  CHECK(*got == json{{"apiVersion", "v1"},
                     {"kind", "Namespace"},
                     {"metadata",
                      {{"name", "n"},
                       {"creationTimestamp", "2025-12-01T00:00:00Z"},
                       {"ownerReferences",
                        {{{"apiVersion", "v1"},
                          {"kind", "Node"},
                          {"name", "n1"},
                          {"uid", "u-1"},
                          {"controller", true}}}},
                       {"finalizers", {"gantry.io/keep"}},
                       {"deletionGracePeriodSeconds", 0}}}});
  CHECK(protobuf_body_supported("", "ConfigMap"));
  CHECK(protobuf_body_supported("batch", "Job"));
  CHECK_FALSE(protobuf_body_supported("", "Pod"));
  CHECK_FALSE(protobuf_body_supported("apps", "Deployment"));
}

TEST_CASE("a protobuf body that is not such an object is refused with what is wrong",
          "[api][protobuf]") {
  std::string good = envelope("ConfigMap", field(1, meta("c")) + field(2, entry("a", "b")));
  REQUIRE(decode_protobuf_body("", "ConfigMap", good).ok());
  struct Case {
    const char* what;
    std::string body;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"no magic", good.substr(4), "does not start with"},
      {"empty", "", "does not start with"},
      {"truncated", good.substr(0, good.size() - 6), "ends inside a field"},
      {"a varint that never ends", std::string("k8s\0", 4) + std::string(12, '\xff'),
       "longer than 10 bytes"},
      {"a length past the end", std::string("k8s\0", 4) + "\x12\x7f" + "abc",
       "ends inside a field"},
      {"data as a varint", envelope("ConfigMap", field_varint(2, 5)), "ConfigMap.data (field 2)"},
      {"a group wire type", envelope("ConfigMap", varint((9 << 3) | 3)), "wire type 3"},
      {"field number 0", envelope("ConfigMap", field(0, "x")), "number 0"},
      {"gzip content encoding",
       std::string("k8s\0", 4) + field(2, field(1, meta("c"))) + field(3, "gzip"),
       "contentEncoding \"gzip\""},
      {"a name that is not UTF-8", envelope("ConfigMap", field(1, meta("\xc3\x28"))),
       "not valid UTF-8"},
      {"a timestamp past year 9999",
       envelope("ConfigMap", field(1, field(8, field_varint(1, 400000000000ULL)))), "out of range"},
      // Found by fuzz_protobuf_body: within Go's years but past what a nanosecond clock holds
      // (year 2820): the conversion overflowed.
      {"a timestamp past year 2261",
       envelope("ConfigMap", field(1, field(8, field_varint(1, 26843545590ULL)))),
       "years 1678 to 2261"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto got = decode_protobuf_body("", "ConfigMap", c.body);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == common::Code::kInvalidArgument);
    CHECK_THAT(got.status().message(), Catch::Contains(c.message));
  }
  // Every prefix of a good body is an answer, not a crash.
  for (size_t n = 0; n < good.size(); ++n)
    (void)decode_protobuf_body("", "ConfigMap", good.substr(0, n));
}

TEST_CASE("kubectl create job's protobuf Job decodes to its JSON", "[api][protobuf][job]") {
  // kubectl create job hello --image=busybox:1.36 -- echo hi: the container (with Go's empty
  // resources message), restartPolicy Never, an empty template ObjectMeta and an empty status.
  std::string container = field(1, "hello") + field(2, "busybox:1.36") + field(3, "echo") +
                          field(3, "hi") + field(8, "") + field(14, "");
  std::string pod_spec = field(2, container) + field(3, "Never");
  std::string tmpl = field(1, meta("")) + field(2, pod_spec);
  // A pointer int of 0 (completions: 0) is kept; an absent one is not there.
  std::string spec = field(6, tmpl) + field_varint(2, 0) + field_varint(7, 3);
  std::string job = field(1, meta("hello")) + field(2, spec) + field(3, "");
  std::string body = std::string("k8s\0", 4) + field(1, field(1, "batch/v1") + field(2, "Job")) +
                     field(2, job) + field(3, "") + field(4, "");
  auto got = decode_protobuf_body("batch", "Job", body);
  REQUIRE(got.ok());
  CHECK(*got == json{{"apiVersion", "batch/v1"},
                     {"kind", "Job"},
                     {"metadata", {{"name", "hello"}}},
                     {"spec",
                      {{"completions", 0},
                       {"backoffLimit", 3},
                       {"template",
                        {{"spec",
                          {{"restartPolicy", "Never"},
                           {"containers",
                            {{{"name", "hello"},
                              {"image", "busybox:1.36"},
                              {"command", {"echo", "hi"}}}}}}}}}}}});
}

}  // namespace
}  // namespace gantry::cloud::api
