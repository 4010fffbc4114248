//! SeaORM entities, one module per table (see `migrations/` for the schema).

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub username: String,
        pub username_lower: String,
        pub email: String,
        pub password_hash: String,
        pub created_at: i64,
        pub token_generation: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod chat {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "chats")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub is_group: bool,
        pub direct_key: Option<String>,
        pub created_by: String,
        pub created_at: i64,
        pub last_seq: i64,
        pub last_activity_at: i64,
        pub last_change: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::chat_member::Entity")]
        Members,
    }

    impl Related<super::chat_member::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Members.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod chat_member {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "chat_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub chat_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub joined_at: i64,
        pub delivered_seq: i64,
        pub read_seq: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::chat::Entity",
            from = "Column::ChatId",
            to = "super::chat::Column::Id"
        )]
        Chat,
        #[sea_orm(
            belongs_to = "super::user::Entity",
            from = "Column::UserId",
            to = "super::user::Column::Id"
        )]
        User,
    }

    impl Related<super::chat::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Chat.def()
        }
    }

    impl Related<super::user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::User.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod message {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub chat_id: String,
        pub seq: i64,
        pub sender_id: String,
        pub idempotency_key: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub content: String,
        pub created_at: i64,
        pub edited_at: Option<i64>,
        pub deleted_at: Option<i64>,
        pub reply_to_id: Option<String>,
        /// Space-separated user ids.
        #[sea_orm(column_type = "Text")]
        pub mentions: String,
        /// The attachments as a JSON array ("" for none).
        #[sea_orm(column_type = "Text")]
        pub attachments: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod reaction {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reactions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub emoji: String,
        pub chat_id: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod mention {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mentions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub chat_id: String,
        pub seq: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod chat_change {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "chat_changes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub chat_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub change_seq: i64,
        pub kind: String,
        pub message_id: Option<String>,
        pub user_id: String,
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

// Rows ⇄ the domain's plain models. Field for field: the entities are the
// schema, the models what the layers above see.

impl From<user::Model> for crate::domain::User {
    fn from(m: user::Model) -> Self {
        crate::domain::User {
            id: m.id,
            username: m.username,
            username_lower: m.username_lower,
            email: m.email,
            password_hash: m.password_hash,
            created_at: m.created_at,
            token_generation: m.token_generation,
        }
    }
}

impl From<crate::domain::User> for user::Model {
    fn from(u: crate::domain::User) -> Self {
        user::Model {
            id: u.id,
            username: u.username,
            username_lower: u.username_lower,
            email: u.email,
            password_hash: u.password_hash,
            created_at: u.created_at,
            token_generation: u.token_generation,
        }
    }
}

impl From<chat::Model> for crate::domain::Chat {
    fn from(m: chat::Model) -> Self {
        crate::domain::Chat {
            id: m.id,
            name: m.name,
            is_group: m.is_group,
            direct_key: m.direct_key,
            created_by: m.created_by,
            created_at: m.created_at,
            last_seq: m.last_seq,
            last_activity_at: m.last_activity_at,
            last_change: m.last_change,
        }
    }
}

impl From<crate::domain::Chat> for chat::Model {
    fn from(c: crate::domain::Chat) -> Self {
        chat::Model {
            id: c.id,
            name: c.name,
            is_group: c.is_group,
            direct_key: c.direct_key,
            created_by: c.created_by,
            created_at: c.created_at,
            last_seq: c.last_seq,
            last_activity_at: c.last_activity_at,
            last_change: c.last_change,
        }
    }
}

impl From<chat_member::Model> for crate::domain::Member {
    fn from(m: chat_member::Model) -> Self {
        crate::domain::Member {
            chat_id: m.chat_id,
            user_id: m.user_id,
            joined_at: m.joined_at,
            delivered_seq: m.delivered_seq,
            read_seq: m.read_seq,
        }
    }
}

impl From<crate::domain::Member> for chat_member::Model {
    fn from(m: crate::domain::Member) -> Self {
        chat_member::Model {
            chat_id: m.chat_id,
            user_id: m.user_id,
            joined_at: m.joined_at,
            delivered_seq: m.delivered_seq,
            read_seq: m.read_seq,
        }
    }
}

impl From<message::Model> for crate::domain::Message {
    fn from(m: message::Model) -> Self {
        crate::domain::Message {
            id: m.id,
            chat_id: m.chat_id,
            seq: m.seq,
            sender_id: m.sender_id,
            idempotency_key: m.idempotency_key,
            content: m.content,
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            reply_to_id: m.reply_to_id,
            mentions: m.mentions.split_whitespace().map(str::to_owned).collect(),
            attachments: attachments_from_column(&m.attachments),
            hidden: false,
        }
    }
}

impl From<crate::domain::Message> for message::Model {
    fn from(m: crate::domain::Message) -> Self {
        message::Model {
            id: m.id,
            chat_id: m.chat_id,
            seq: m.seq,
            sender_id: m.sender_id,
            idempotency_key: m.idempotency_key,
            content: m.content,
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            reply_to_id: m.reply_to_id,
            mentions: m.mentions.join(" "),
            attachments: attachments_column(&m.attachments),
        }
    }
}

/// `messages.attachments`: "" for none (most messages), else a JSON array.
pub(super) fn attachments_column(list: &[crate::domain::Attachment]) -> String {
    if list.is_empty() {
        return String::new();
    }
    serde_json::to_string(list).unwrap_or_default()
}

fn attachments_from_column(text: &str) -> Vec<crate::domain::Attachment> {
    if text.is_empty() {
        return Vec::new();
    }
    serde_json::from_str(text).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "unreadable messages.attachments");
        Vec::new()
    })
}

/// Rows into models, for the many queries that return a list.
pub(super) fn models<R, M: From<R>>(rows: Vec<R>) -> Vec<M> {
    rows.into_iter().map(M::from).collect()
}

pub mod block {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "blocks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub blocker_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub blocked_id: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "files")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub uploader_id: String,
        #[sea_orm(column_type = "Text")]
        pub name: String,
        pub content_type: String,
        pub size: i64,
        pub width: i32,
        pub height: i32,
        pub has_thumbnail: bool,
        pub etag: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod message_file {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "message_files")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub file_id: String,
        pub message_id: String,
        pub chat_id: String,
        pub position: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
