DROP TABLE _walmirror_tables;
