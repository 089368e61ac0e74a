// Starts Swagger UI on the schema its page names. A file rather than an inline script, so that the
// docs' Content Security Policy runs no inline script at all.
const container = document.getElementById("swagger-ui");

window.ui = window.SwaggerUIBundle({
  url: container.dataset.schemaUrl,
  domNode: container,
  deepLinking: true,
  // The public validator's badge would be fetched from elsewhere: the docs load nothing from outside.
  validatorUrl: null,
});
