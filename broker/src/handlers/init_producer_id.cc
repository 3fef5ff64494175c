#include <spdlog/spdlog.h>

#include "handlers.h"
#include "sh/kafka/messages/init_producer_id_request.h"
#include "sh/kafka/messages/init_producer_id_response.h"

namespace sh::broker {

// Idempotent producers: a producer id unique across brokers (the metadata store's counter) at
// epoch 0. Sequence checks happen in the commit transaction of every ingest object.
awaitable<handler_response> handle_init_producer_id(broker_context& ctx, connection_state& conn,
                                                    const request& req) {
  kafka::init_producer_id_request in;
  kafka::byte_reader r(req.body());
  if (!in.decode(r, req.api_version)) co_return malformed_request(req, "InitProducerId body");

  kafka::init_producer_id_response resp;
  auto id = co_await run_blocking(
      ctx.blocking, [&] { return ctx.meta->init_producer_id(in.transactional_id.value_or("")); });
  if (!id) {
    spdlog::error("{}: InitProducerId failed: {}", conn.peer, id.message());
    resp.error_code = static_cast<int16_t>(id.code() == metadata::errc::invalid_argument
                                               ? kafka::error_code::invalid_request
                                               : kafka::error_code::coordinator_not_available);
    resp.producer_id = -1;
    resp.producer_epoch = -1;
  } else {
    resp.producer_id = id->producer_id;
    resp.producer_epoch = id->producer_epoch;
  }
  co_return handler_response{encode_body(resp, req.api_version)};
}

}  // namespace sh::broker
