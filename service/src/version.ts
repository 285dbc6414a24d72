/** The bundled Charge Analysis service's version (recorded in service_meta, backups and `service status`). */
export const SERVICE_VERSION = '1.0.0'
export const SERVICE_NAME = 'charge-analysis'
