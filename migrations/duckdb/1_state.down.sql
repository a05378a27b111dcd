DROP TABLE _walmirror_state;
