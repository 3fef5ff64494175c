#include "../handlers/handlers.h"

namespace sh::broker {

std::vector<api_handler> admin_handlers() { return {}; }

}  // namespace sh::broker
