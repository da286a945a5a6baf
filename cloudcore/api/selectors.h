// Kubernetes label and field selectors: parsing (errors a person can act on) and matching.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace gantry::cloud::api {

struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kNotExists };
  std::string key;
  Op op = Op::kEquals;
  std::vector<std::string> values;  // one for (not) equals, one or more for (not) in
};

// "app=web,tier!=db,env in (prod, staging),!legacy,release" — every requirement must hold.
class LabelSelector {
 public:
  static common::Result<LabelSelector> parse(std::string_view text);

  bool matches(const std::map<std::string, std::string>& labels) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<LabelRequirement>& requirements() const { return requirements_; }

 private:
  std::vector<LabelRequirement> requirements_;
};

struct FieldRequirement {
  std::string field;  // "metadata.name"
  std::string value;
  bool negated = false;  // !=
};

// "metadata.name=web,spec.nodeName!=n1". Only the fields in `supported` are accepted (Kubernetes
// answers 400 for others, and so do we).
class FieldSelector {
 public:
  static common::Result<FieldSelector> parse(std::string_view text,
                                             const std::vector<std::string>& supported);

  // `value_of` gives an object's value for a field ("" when unset).
  bool matches(const std::function<std::string(const std::string&)>& value_of) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<FieldRequirement>& requirements() const { return requirements_; }

 private:
  std::vector<FieldRequirement> requirements_;
};

}  // namespace gantry::cloud::api
