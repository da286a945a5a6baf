#include "cloudcore/store/store.h"

namespace gantry::cloud {

Result<Revision> Store::put(std::string key, std::string value, std::optional<Revision> expect) {
  std::vector<Op> ops;
  ops.push_back(Op::put(std::move(key), std::move(value), expect));
  GANTRY_ASSIGN_OR_RETURN(TxnResult result, txn(std::move(ops)));
  return result.revision;
}

Result<Revision> Store::remove(std::string key, std::optional<Revision> expect) {
  std::vector<Op> ops;
  ops.push_back(Op::remove(std::move(key), expect));
  GANTRY_ASSIGN_OR_RETURN(TxnResult result, txn(std::move(ops)));
  return result.revision;
}

}  // namespace gantry::cloud
