-- The one PanDA queue of the tests (@SITE_NAME@), pull mode, unified, no storage.
INSERT INTO doma_panda.site (site_name, role) VALUES ('@SITE_NAME@_SITE', 'satellite');
INSERT INTO doma_panda.panda_site (panda_site_name, site_name, default_ddm_endpoint, is_local)
  VALUES ('@SITE_NAME@', '@SITE_NAME@_SITE', NULL, 'N');
INSERT INTO doma_panda.schedconfig_json (panda_queue, data, last_update) VALUES ('@SITE_NAME@',
 '{"siteid": "@SITE_NAME@", "nickname": "@SITE_NAME@", "panda_resource": "@SITE_NAME@",
   "atlas_site": "@SITE_NAME@_SITE", "status": "online", "type": "unified", "cloud": "US",
   "vo_name": "wlcg", "capability": "ucore", "corecount": 8, "maxtime": 0, "maxrss": 0,
   "minrss": 0, "memory": 0, "maxwdir": 100000, "catchall": "", "jobseed": "std",
   "workflow": "pull_ups", "pilot_manager": "local", "resource_type": "SCORE",
   "is_cvmfs": false, "harvester": "", "ddm": "", "objectstores": [], "astorages": {},
   "acopytools": {}}',
 now() AT TIME ZONE 'UTC');
