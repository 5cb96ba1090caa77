/* placeholder, replaced by the logging module */
