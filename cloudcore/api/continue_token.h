// List continuation: the token carries the revision of the first page (every page reads the
// store at it, so pages are consistent) and the last key returned.
#pragma once

#include <string>
#include <string_view>

#include "cloudcore/store/store.h"
#include "common/base/status.h"

namespace gantry::cloud::api {

struct ContinueToken {
  Revision revision = 0;
  std::string last_key;
};

std::string encode_continue(const ContinueToken& token);
// kInvalidArgument for anything that is not a token we wrote.
common::Result<ContinueToken> decode_continue(std::string_view text);

}  // namespace gantry::cloud::api
