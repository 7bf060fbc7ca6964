// Swagger UI over the gateway's generated document. The document's URL is
// relative, so the page works behind a proxy that mounts the gateway under
// a path prefix.
window.ui = SwaggerUIBundle({
  url: new URL("../openapi.json", window.location.href).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  // No calls to swagger.io: the badge would ask an outside validator.
  validatorUrl: null,
  displayRequestDuration: true,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
