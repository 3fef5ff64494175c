#pragma once
// The two ends every mirror task opens from its config: the archive (metadata store and object
// store, the broker's keys) and a librdkafka consumer on the source. Shared by the mirror and
// `mirror verify`.
#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>

#include "sh/connector/mirror.h"
#include "sh/metadata/metadata_store.h"
#include "sh/storage/object_store.h"

namespace sh::connector {

struct archive_stores {
  std::unique_ptr<metadata::metadata_store> meta;
  std::unique_ptr<storage::object_store> store;
};

// Opens metadata.url and storage.url (with the s3.* keys). Errors name the URL.
cresult<archive_stores> open_archive(const mirror_config& cfg);

// A consumer on source.bootstrap.servers: `defaults` first, then every source.* key of the
// config over them. The caller owns the handle (rd_kafka_consumer_close + rd_kafka_destroy).
cresult<rd_kafka_t*> open_source_consumer(const mirror_config& cfg,
                                          std::map<std::string, std::string> defaults);

}  // namespace sh::connector
