DROP TABLE _walmirror.tables;
