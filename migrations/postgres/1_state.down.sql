DROP TABLE _walmirror.state;
