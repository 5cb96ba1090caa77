/* placeholder */
#include "config.h"
typedef int nx_config_placeholder_t;
