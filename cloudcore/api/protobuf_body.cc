#include "cloudcore/api/protobuf_body.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/base/parse.h"

namespace gantry::cloud::api {

using json = nlohmann::json;
using common::Code;
using common::make_error;

namespace {

// ----- the protobuf wire format (varints and length-delimited fields are all these use)

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  common::Result<uint64_t> varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return truncated();
      auto byte = static_cast<uint8_t>(data_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    return make_error(Code::kInvalidArgument, "a varint is longer than 10 bytes");
  }

  common::Result<std::string_view> bytes() {
    GANTRY_ASSIGN_OR_RETURN(uint64_t size, varint());
    if (size > data_.size() - pos_) return truncated();
    std::string_view out = data_.substr(pos_, size);
    pos_ += size;
    return out;
  }

  common::Status skip(uint32_t wire_type) {
    switch (wire_type) {
      case kVarint:
        return varint().status();
      case kLengthDelimited:
        return bytes().status();
      case kFixed64:
      case kFixed32: {
        size_t n = wire_type == kFixed64 ? 8 : 4;
        if (n > data_.size() - pos_) return truncated();
        pos_ += n;
        return common::ok_status();
      }
      default:  // groups (3, 4) are not used by Kubernetes; anything else is not protobuf
        return make_error(Code::kInvalidArgument, "wire type {} is not supported", wire_type);
    }
  }

 private:
  static common::Status truncated() {
    return make_error(Code::kInvalidArgument, "the message ends inside a field");
  }
  std::string_view data_;
  size_t pos_ = 0;
};

// ----- field tables

enum class Type {
  kString,
  kBytes,        // base64 in JSON
  kInt,          // int32/int64; left out when 0 unless `keep_zero` (Go pointers)
  kBool,         // always a pointer in these kinds: kept when present
  kTime,         // metav1.Time {seconds, nanos} -> RFC 3339; left out when zero
  kMessage,      // `message`; left out when empty
  kStringMap,    // map<string, string>
  kBytesMap,     // map<string, bytes> -> base64 values
  kStringList,   // repeated string
  kMessageList,  // repeated `message`
};

struct Message;
struct Field {
  uint32_t number;
  const char* name;
  Type type;
  const Message* message = nullptr;
  bool keep_zero = false;
};
struct Message {
  const char* name;
  std::vector<Field> fields;
  const Field* find(uint32_t number) const {
    for (const auto& f : fields)
      if (f.number == number) return &f;
    return nullptr;
  }
};

const Message kOwnerReference{"OwnerReference",
                              {{5, "apiVersion", Type::kString},
                               {1, "kind", Type::kString},
                               {3, "name", Type::kString},
                               {4, "uid", Type::kString},
                               {6, "controller", Type::kBool},
                               {7, "blockOwnerDeletion", Type::kBool}}};

// managedFields (17) are skipped: the server keeps its own.
const Message kObjectMeta{"ObjectMeta",
                          {{1, "name", Type::kString},
                           {2, "generateName", Type::kString},
                           {3, "namespace", Type::kString},
                           {4, "selfLink", Type::kString},
                           {5, "uid", Type::kString},
                           {6, "resourceVersion", Type::kString},
                           {7, "generation", Type::kInt},
                           {8, "creationTimestamp", Type::kTime},
                           {9, "deletionTimestamp", Type::kTime},
                           {10, "deletionGracePeriodSeconds", Type::kInt, nullptr, true},
                           {11, "labels", Type::kStringMap},
                           {12, "annotations", Type::kStringMap},
                           {13, "ownerReferences", Type::kMessageList, &kOwnerReference},
                           {14, "finalizers", Type::kStringList}}};

const Message kConfigMap{"ConfigMap",
                         {{1, "metadata", Type::kMessage, &kObjectMeta},
                          {2, "data", Type::kStringMap},
                          {3, "binaryData", Type::kBytesMap},
                          {4, "immutable", Type::kBool}}};

const Message kSecret{"Secret",
                      {{1, "metadata", Type::kMessage, &kObjectMeta},
                       {2, "data", Type::kBytesMap},
                       {3, "type", Type::kString},
                       {4, "stringData", Type::kStringMap},
                       {5, "immutable", Type::kBool}}};

const Message kNamespaceSpec{"NamespaceSpec", {{1, "finalizers", Type::kStringList}}};
const Message kNamespaceStatus{"NamespaceStatus", {{1, "phase", Type::kString}}};
const Message kNamespace{"Namespace",
                         {{1, "metadata", Type::kMessage, &kObjectMeta},
                          {2, "spec", Type::kMessage, &kNamespaceSpec},
                          {3, "status", Type::kMessage, &kNamespaceStatus}}};

// batch/v1 Job, for `kubectl create job` (kubectl >= 1.33 sends its typed clients' bodies as
// protobuf): the fields kubectl and common manifests set. Non-pointer Go bools of PodSpec and
// Container (hostNetwork, stdin, tty, ...) and resources (Quantity values) are not read.
const Message kEnvVar{"EnvVar", {{1, "name", Type::kString}, {2, "value", Type::kString}}};
const Message kContainer{"Container",
                         {{1, "name", Type::kString},
                          {2, "image", Type::kString},
                          {3, "command", Type::kStringList},
                          {4, "args", Type::kStringList},
                          {5, "workingDir", Type::kString},
                          {7, "env", Type::kMessageList, &kEnvVar},
                          {13, "terminationMessagePath", Type::kString},
                          {14, "imagePullPolicy", Type::kString},
                          {20, "terminationMessagePolicy", Type::kString}}};
const Message kPodSpec{"PodSpec",
                       {{2, "containers", Type::kMessageList, &kContainer},
                        {3, "restartPolicy", Type::kString},
                        {4, "terminationGracePeriodSeconds", Type::kInt, nullptr, true},
                        {5, "activeDeadlineSeconds", Type::kInt},
                        {6, "dnsPolicy", Type::kString},
                        {7, "nodeSelector", Type::kStringMap},
                        {8, "serviceAccountName", Type::kString},
                        {10, "nodeName", Type::kString},
                        {16, "hostname", Type::kString},
                        {19, "schedulerName", Type::kString},
                        {20, "initContainers", Type::kMessageList, &kContainer}}};
const Message kPodTemplateSpec{
    "PodTemplateSpec",
    {{1, "metadata", Type::kMessage, &kObjectMeta}, {2, "spec", Type::kMessage, &kPodSpec}}};
const Message kLabelSelectorRequirement{
    "LabelSelectorRequirement",
    {{1, "key", Type::kString}, {2, "operator", Type::kString}, {3, "values", Type::kStringList}}};
const Message kLabelSelector{
    "LabelSelector",
    {{1, "matchLabels", Type::kStringMap},
     {2, "matchExpressions", Type::kMessageList, &kLabelSelectorRequirement}}};
// Pointer ints (parallelism, completions, backoffLimit, ttlSecondsAfterFinished) keep a 0.
const Message kJobSpec{"JobSpec",
                       {{1, "parallelism", Type::kInt, nullptr, true},
                        {2, "completions", Type::kInt, nullptr, true},
                        {3, "activeDeadlineSeconds", Type::kInt},
                        {4, "selector", Type::kMessage, &kLabelSelector},
                        {5, "manualSelector", Type::kBool},
                        {6, "template", Type::kMessage, &kPodTemplateSpec},
                        {7, "backoffLimit", Type::kInt, nullptr, true},
                        {8, "ttlSecondsAfterFinished", Type::kInt, nullptr, true},
                        {9, "completionMode", Type::kString},
                        {10, "suspend", Type::kBool},
                        {14, "podReplacementPolicy", Type::kString},
                        {15, "managedBy", Type::kString}}};
// status (3) is not read: a Job's status is the controller's.
const Message kJob{
    "Job", {{1, "metadata", Type::kMessage, &kObjectMeta}, {2, "spec", Type::kMessage, &kJobSpec}}};
// batch/v1 CronJob, for `kubectl create cronjob`.
const Message kJobTemplateSpec{
    "JobTemplateSpec",
    {{1, "metadata", Type::kMessage, &kObjectMeta}, {2, "spec", Type::kMessage, &kJobSpec}}};
const Message kCronJobSpec{"CronJobSpec",
                           {{1, "schedule", Type::kString},
                            {2, "startingDeadlineSeconds", Type::kInt, nullptr, true},
                            {3, "concurrencyPolicy", Type::kString},
                            {4, "suspend", Type::kBool},
                            {5, "jobTemplate", Type::kMessage, &kJobTemplateSpec},
                            {6, "successfulJobsHistoryLimit", Type::kInt, nullptr, true},
                            {7, "failedJobsHistoryLimit", Type::kInt, nullptr, true},
                            {8, "timeZone", Type::kString}}};
const Message kCronJob{
    "CronJob",
    {{1, "metadata", Type::kMessage, &kObjectMeta}, {2, "spec", Type::kMessage, &kCronJobSpec}}};

// runtime.Unknown and its TypeMeta.
const Message kTypeMeta{"TypeMeta", {{1, "apiVersion", Type::kString}, {2, "kind", Type::kString}}};

const Message* message_of(std::string_view group, std::string_view kind) {
  if (group == "batch") return kind == "Job" ? &kJob : kind == "CronJob" ? &kCronJob : nullptr;
  if (!group.empty()) return nullptr;
  if (kind == "ConfigMap") return &kConfigMap;
  if (kind == "Secret") return &kSecret;
  if (kind == "Namespace") return &kNamespace;
  return nullptr;
}

common::Status wrong_wire_type(const Message& m, const Field& f, uint32_t wire_type) {
  return make_error(Code::kInvalidArgument, "{}.{} (field {}) has wire type {}", m.name, f.name,
                    f.number, wire_type);
}

common::Result<json> decode(const Message& m, std::string_view data);

// A map entry: key 1, value 2.
common::Status decode_entry(const Message& m, const Field& f, std::string_view data, json& out) {
  Reader r(data);
  std::string key;
  std::string value;
  while (!r.done()) {
    GANTRY_ASSIGN_OR_RETURN(uint64_t tag, r.varint());
    auto number = static_cast<uint32_t>(tag >> 3);
    auto wire_type = static_cast<uint32_t>(tag & 7);
    if ((number == 1 || number == 2) && wire_type == kLengthDelimited) {
      GANTRY_ASSIGN_OR_RETURN(std::string_view text, r.bytes());
      (number == 1 ? key : value) = std::string(text);
    } else if (number == 1 || number == 2) {
      return wrong_wire_type(m, f, wire_type);
    } else {
      GANTRY_RETURN_IF_ERROR(r.skip(wire_type));
    }
  }
  if (!out.contains(f.name)) out[f.name] = json::object();
  out[f.name][key] = f.type == Type::kBytesMap ? common::base64_encode(value) : value;
  return common::ok_status();
}

common::Result<std::string> decode_time(std::string_view data) {
  Reader r(data);
  int64_t seconds = 0;
  int64_t nanos = 0;
  while (!r.done()) {
    GANTRY_ASSIGN_OR_RETURN(uint64_t tag, r.varint());
    auto number = static_cast<uint32_t>(tag >> 3);
    auto wire_type = static_cast<uint32_t>(tag & 7);
    if ((number == 1 || number == 2) && wire_type == kVarint) {
      GANTRY_ASSIGN_OR_RETURN(uint64_t v, r.varint());
      (number == 1 ? seconds : nanos) = static_cast<int64_t>(v);
    } else {
      GANTRY_RETURN_IF_ERROR(r.skip(wire_type));
    }
  }
  if (seconds == 0 && nanos == 0) return std::string();
  // The years the server's clock type holds (nanoseconds in 64 bits: 1678-2261; fuzz_protobuf_body
  // found the overflow of Go's whole 0001-9999 range).
  constexpr int64_t kMinSeconds = -9'214'560'000;  // 1678-01-01
  constexpr int64_t kMaxSeconds = 9'214'646'399;   // 2261-12-31T23:59:59Z
  if (seconds < kMinSeconds || seconds > kMaxSeconds || nanos < 0 || nanos > 999999999)
    return make_error(Code::kInvalidArgument,
                      "a timestamp is out of range (years 1678 to 2261 are accepted)");
  std::chrono::system_clock::time_point t{std::chrono::seconds(seconds)};
  return common::format_rfc3339(t);  // second precision, as metav1.Time
}

common::Status decode_field(const Message& m, const Field& f, uint32_t wire_type, Reader& r,
                            json& out) {
  if (f.type == Type::kInt || f.type == Type::kBool) {
    if (wire_type != kVarint) return wrong_wire_type(m, f, wire_type);
    GANTRY_ASSIGN_OR_RETURN(uint64_t v, r.varint());
    if (f.type == Type::kBool) {
      out[f.name] = v != 0;
    } else if (v != 0 || f.keep_zero) {
      out[f.name] = static_cast<int64_t>(v);
    }
    return common::ok_status();
  }
  if (wire_type != kLengthDelimited) return wrong_wire_type(m, f, wire_type);
  GANTRY_ASSIGN_OR_RETURN(std::string_view data, r.bytes());
  switch (f.type) {
    case Type::kString:
      if (!data.empty()) out[f.name] = std::string(data);
      break;
    case Type::kBytes:
      if (!data.empty()) out[f.name] = common::base64_encode(data);
      break;
    case Type::kTime: {
      GANTRY_ASSIGN_OR_RETURN(std::string text, decode_time(data));
      if (!text.empty()) out[f.name] = std::move(text);
      break;
    }
    case Type::kMessage: {
      GANTRY_ASSIGN_OR_RETURN(json sub, decode(*f.message, data));
      if (!sub.empty()) out[f.name] = std::move(sub);
      break;
    }
    case Type::kMessageList: {
      GANTRY_ASSIGN_OR_RETURN(json sub, decode(*f.message, data));
      out[f.name].push_back(std::move(sub));
      break;
    }
    case Type::kStringList:
      out[f.name].push_back(std::string(data));
      break;
    case Type::kStringMap:
    case Type::kBytesMap:
      return decode_entry(m, f, data, out);
    default:
      break;
  }
  return common::ok_status();
}

// The tables are not recursive, so nesting is bounded by them (Job -> JobSpec -> PodTemplateSpec
// -> ObjectMeta -> OwnerReference).
common::Result<json> decode(const Message& m, std::string_view data) {
  json out = json::object();
  Reader r(data);
  while (!r.done()) {
    GANTRY_ASSIGN_OR_RETURN(uint64_t tag, r.varint());
    auto number = static_cast<uint32_t>(tag >> 3);
    auto wire_type = static_cast<uint32_t>(tag & 7);
    if (number == 0) return make_error(Code::kInvalidArgument, "a field has number 0");
    const Field* f = m.find(number);
    if (!f) {
      GANTRY_RETURN_IF_ERROR(r.skip(wire_type));
      continue;
    }
    GANTRY_RETURN_IF_ERROR(decode_field(m, *f, wire_type, r, out));
  }
  return out;
}

common::Status not_protobuf(const common::Status& why) {
  return make_error(Code::kInvalidArgument, "the request body is not a valid {} object: {}",
                    kProtobufMediaType, why.message());
}

}  // namespace

bool protobuf_body_supported(std::string_view group, std::string_view kind) {
  return message_of(group, kind) != nullptr;
}

common::Result<json> decode_protobuf_body(std::string_view group, std::string_view kind,
                                          std::string_view body) {
  const Message* m = message_of(group, kind);
  if (!m)
    return make_error(Code::kInvalidArgument, "{} bodies are not decoded for {}",
                      kProtobufMediaType, kind);
  constexpr std::string_view kMagic("k8s\0", 4);
  if (body.substr(0, kMagic.size()) != kMagic)
    return not_protobuf(make_error(Code::kInvalidArgument, "it does not start with \"k8s\\0\""));
  // runtime.Unknown: typeMeta 1, raw 2, contentEncoding 3, contentType 4.
  Reader r(body.substr(kMagic.size()));
  json type_meta = json::object();
  std::string_view raw;
  while (!r.done()) {
    auto tag = r.varint();
    if (!tag.ok()) return not_protobuf(tag.status());
    auto number = static_cast<uint32_t>(*tag >> 3);
    auto wire_type = static_cast<uint32_t>(*tag & 7);
    if (number >= 1 && number <= 3 && wire_type == kLengthDelimited) {
      auto data = r.bytes();
      if (!data.ok()) return not_protobuf(data.status());
      if (number == 1) {
        auto decoded = decode(kTypeMeta, *data);
        if (!decoded.ok()) return not_protobuf(decoded.status());
        type_meta = std::move(*decoded);
      } else if (number == 2) {
        raw = *data;
      } else if (!data->empty()) {
        return not_protobuf(make_error(Code::kInvalidArgument,
                                       "contentEncoding \"{}\" is not "
                                       "supported",
                                       std::string(*data)));
      }
    } else {
      if (auto skipped = r.skip(wire_type); !skipped.ok()) return not_protobuf(skipped);
    }
  }
  auto obj = decode(*m, raw);
  if (!obj.ok()) return not_protobuf(obj.status());
  json out = json::object();
  for (const char* f : {"apiVersion", "kind"})
    if (type_meta.contains(f)) out[f] = type_meta[f];
  for (auto& [key, value] : obj->items()) out[key] = std::move(value);
  // Strings are bytes on the wire: one that is not UTF-8 would make every later dump() throw.
  try {
    (void)out.dump();
  } catch (const json::exception&) {
    return not_protobuf(make_error(Code::kInvalidArgument, "a string is not valid UTF-8"));
  }
  return out;
}

}  // namespace gantry::cloud::api
