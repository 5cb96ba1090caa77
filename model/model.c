/* placeholder translation unit until the MLP lands (issue 5) */
typedef int nx_model_placeholder_t;
