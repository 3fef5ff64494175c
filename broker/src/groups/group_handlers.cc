#include "../handlers/handlers.h"

namespace sh::broker {

std::vector<api_handler> group_handlers() { return {}; }

}  // namespace sh::broker
