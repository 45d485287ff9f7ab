import { createPinia } from 'pinia';
import { createApp } from 'vue';
import App from './App.vue';
import { createAdminRouter } from './router.js';
import { useSessionStore } from './stores/session.js';
import './styles/main.css';

const app = createApp(App);
const pinia = createPinia();
app.use(pinia);
useSessionStore(pinia).restore();
app.use(createAdminRouter(pinia));
app.mount('#app');
