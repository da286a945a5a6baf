#include "cloudcore/api/selectors.h"

#include <algorithm>
#include <cctype>

namespace gantry::cloud::api {
namespace {

using common::Code;
using common::make_error;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Label keys: optional DNS prefix + '/' + name of [A-Za-z0-9-_.], at most 63 characters.
bool valid_key(std::string_view key) {
  auto slash = key.rfind('/');
  std::string_view name = slash == std::string_view::npos ? key : key.substr(slash + 1);
  std::string_view prefix = slash == std::string_view::npos ? "" : key.substr(0, slash);
  if (name.empty() || name.size() > 63) return false;
  if (slash != std::string_view::npos && (prefix.empty() || prefix.size() > 253)) return false;
  auto ok = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  };
  if (!std::all_of(name.begin(), name.end(), ok)) return false;
  if (!std::isalnum(static_cast<unsigned char>(name.front())) ||
      !std::isalnum(static_cast<unsigned char>(name.back())))
    return false;
  return std::all_of(prefix.begin(), prefix.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

bool valid_value(std::string_view v) {
  if (v.empty()) return true;
  if (v.size() > 63) return false;
  auto ok = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  };
  return std::all_of(v.begin(), v.end(), ok) &&
         std::isalnum(static_cast<unsigned char>(v.front())) &&
         std::isalnum(static_cast<unsigned char>(v.back()));
}

// Splits on commas outside parentheses.
common::Result<std::vector<std::string_view>> split_terms(std::string_view text) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || (text[i] == ',' && depth == 0)) {
      out.push_back(trim(text.substr(start, i - start)));
      start = i + 1;
    } else if (text[i] == '(') {
      if (++depth > 1)
        return make_error(Code::kInvalidArgument, "nested parentheses in selector \"{}\"", text);
    } else if (text[i] == ')') {
      if (--depth < 0)
        return make_error(Code::kInvalidArgument, "unbalanced ')' in selector \"{}\"", text);
    }
  }
  if (depth != 0)
    return make_error(Code::kInvalidArgument, "unbalanced '(' in selector \"{}\"", text);
  return out;
}

common::Result<LabelRequirement> parse_label_term(std::string_view term) {
  LabelRequirement r;
  if (term.empty()) return make_error(Code::kInvalidArgument, "empty requirement");
  if (term.front() == '!') {
    r.key = std::string(trim(term.substr(1)));
    r.op = LabelRequirement::Op::kNotExists;
    if (!valid_key(r.key))
      return make_error(Code::kInvalidArgument, "invalid label key \"{}\"", r.key);
    return r;
  }
  // Set-based: "key in (a,b)", "key notin (a)".
  auto paren = term.find('(');
  if (paren != std::string_view::npos) {
    if (term.back() != ')')
      return make_error(Code::kInvalidArgument, "\"{}\": expected ')' at the end", term);
    std::string_view head = trim(term.substr(0, paren));
    auto space = head.find_last_of(" \t");
    if (space == std::string_view::npos)
      return make_error(Code::kInvalidArgument,
                        "\"{}\": expected \"KEY in (...)\" or \"KEY notin (...)\"", term);
    std::string_view op = head.substr(space + 1);
    r.key = std::string(trim(head.substr(0, space)));
    if (op == "in") {
      r.op = LabelRequirement::Op::kIn;
    } else if (op == "notin") {
      r.op = LabelRequirement::Op::kNotIn;
    } else {
      return make_error(Code::kInvalidArgument, "\"{}\": unknown operator \"{}\" (in, notin)", term,
                        op);
    }
    std::string_view inside = term.substr(paren + 1, term.size() - paren - 2);
    size_t start = 0;
    for (size_t i = 0; i <= inside.size(); ++i) {
      if (i == inside.size() || inside[i] == ',') {
        std::string_view v = trim(inside.substr(start, i - start));
        if (!valid_value(v))
          return make_error(Code::kInvalidArgument, "invalid label value \"{}\"", v);
        r.values.emplace_back(v);
        start = i + 1;
      }
    }
    if (r.values.size() == 1 && r.values[0].empty())
      return make_error(Code::kInvalidArgument, "\"{}\": the set of values is empty", term);
    if (!valid_key(r.key))
      return make_error(Code::kInvalidArgument, "invalid label key \"{}\"", r.key);
    return r;
  }
  size_t pos;
  size_t op_len = 0;
  if ((pos = term.find("!=")) != std::string_view::npos) {
    r.op = LabelRequirement::Op::kNotEquals;
    op_len = 2;
  } else if ((pos = term.find("==")) != std::string_view::npos) {
    op_len = 2;
  } else if ((pos = term.find('=')) != std::string_view::npos) {
    op_len = 1;
  } else {
    r.key = std::string(term);
    r.op = LabelRequirement::Op::kExists;
    if (!valid_key(r.key))
      return make_error(Code::kInvalidArgument, "invalid label key \"{}\"", r.key);
    return r;
  }
  r.key = std::string(trim(term.substr(0, pos)));
  std::string_view value = trim(term.substr(pos + op_len));
  if (!valid_key(r.key))
    return make_error(Code::kInvalidArgument, "invalid label key \"{}\"", r.key);
  if (!valid_value(value) || value.find('=') != std::string_view::npos)
    return make_error(Code::kInvalidArgument, "invalid label value \"{}\"", value);
  r.values.emplace_back(value);
  return r;
}

}  // namespace

common::Result<LabelSelector> LabelSelector::parse(std::string_view text) {
  LabelSelector selector;
  text = trim(text);
  if (text.empty()) return selector;
  auto terms = split_terms(text);
  if (!terms.ok()) return terms.status().with_context("labelSelector");
  for (std::string_view term : *terms) {
    auto r = parse_label_term(term);
    if (!r.ok()) return r.status().with_context(fmt::format("labelSelector \"{}\"", text));
    selector.requirements_.push_back(std::move(r).value());
  }
  return selector;
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  for (const auto& r : requirements_) {
    auto it = labels.find(r.key);
    bool has = it != labels.end();
    auto in_values = [&] {
      return has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    };
    switch (r.op) {
      case LabelRequirement::Op::kEquals:
      case LabelRequirement::Op::kIn:
        if (!in_values()) return false;
        break;
      case LabelRequirement::Op::kNotEquals:
      case LabelRequirement::Op::kNotIn:
        if (in_values()) return false;
        break;
      case LabelRequirement::Op::kExists:
        if (!has) return false;
        break;
      case LabelRequirement::Op::kNotExists:
        if (has) return false;
        break;
    }
  }
  return true;
}

common::Result<FieldSelector> FieldSelector::parse(std::string_view text,
                                                   const std::vector<std::string>& supported) {
  FieldSelector selector;
  text = trim(text);
  if (text.empty()) return selector;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i != text.size() && text[i] != ',') continue;
    std::string_view term = trim(text.substr(start, i - start));
    start = i + 1;
    FieldRequirement r;
    size_t pos;
    size_t op_len;
    if ((pos = term.find("!=")) != std::string_view::npos) {
      r.negated = true;
      op_len = 2;
    } else if ((pos = term.find("==")) != std::string_view::npos) {
      op_len = 2;
    } else if ((pos = term.find('=')) != std::string_view::npos) {
      op_len = 1;
    } else {
      return make_error(Code::kInvalidArgument,
                        "fieldSelector \"{}\": \"{}\" has no operator (=, ==, !=)", text, term);
    }
    r.field = std::string(trim(term.substr(0, pos)));
    r.value = std::string(trim(term.substr(pos + op_len)));
    if (std::find(supported.begin(), supported.end(), r.field) == supported.end()) {
      std::string list;
      for (const auto& f : supported) list += (list.empty() ? "" : ", ") + f;
      return make_error(Code::kInvalidArgument,
                        "fieldSelector \"{}\": field \"{}\" is not supported (supported: {})", text,
                        r.field, list);
    }
    selector.requirements_.push_back(std::move(r));
  }
  return selector;
}

bool FieldSelector::matches(const std::function<std::string(const std::string&)>& value_of) const {
  for (const auto& r : requirements_) {
    if ((value_of(r.field) == r.value) == r.negated) return false;
  }
  return true;
}

}  // namespace gantry::cloud::api
