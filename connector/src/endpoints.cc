#include "endpoints.h"

namespace sh::connector {

cresult<archive_stores> open_archive(const mirror_config& cfg) {
  auto meta = metadata::open_metadata_store(cfg.metadata_url);
  if (!meta) {
    return make_error(errc::metadata_error, "opening " + cfg.metadata_url + ": " + meta.message());
  }
  storage::s3_options s3;
  s3.endpoint = cfg.s3_endpoint;
  s3.region = cfg.s3_region;
  s3.access_key = cfg.s3_access_key;
  s3.secret_key = cfg.s3_secret_key;
  s3.path_style = cfg.s3_path_style;
  auto store = storage::open_object_store(cfg.storage_url, s3);
  if (!store) {
    return make_error(errc::storage_error, "opening " + cfg.storage_url + ": " + store.message());
  }
  return archive_stores{std::move(*meta), std::move(*store)};
}

cresult<rd_kafka_t*> open_source_consumer(const mirror_config& cfg,
                                          std::map<std::string, std::string> defaults) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : cfg.source_props) defaults[k] = v;
  for (const auto& [k, v] : defaults) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return make_error(errc::invalid_config, "source." + k + ": " + err);
    }
  }
  // rd_kafka_new takes the conf only when it succeeds.
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return make_error(errc::source_error, std::string("creating the source consumer: ") + err);
  }
  rd_kafka_poll_set_consumer(rk);
  return rk;
}

}  // namespace sh::connector
