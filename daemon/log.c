/* placeholder */
typedef int nx_log_placeholder_t;
